package ai.edgefusion.demo

import android.database.Cursor
import android.database.MatrixCursor
import android.os.CancellationSignal
import android.os.ParcelFileDescriptor
import android.provider.DocumentsContract.Document
import android.provider.DocumentsContract.Root
import android.provider.DocumentsProvider
import java.io.File

/** A real DocumentsProvider over a local folder: what the system picker hands the app, with document ids = paths. */
class FolderDocumentsProvider : DocumentsProvider() {
    override fun onCreate(): Boolean = true

    override fun queryRoots(projection: Array<out String>?): Cursor =
        MatrixCursor(arrayOf(Root.COLUMN_ROOT_ID, Root.COLUMN_DOCUMENT_ID)).apply { addRow(arrayOf(ROOT_ID, ROOT_ID)) }

    override fun queryDocument(documentId: String, projection: Array<out String>?): Cursor =
        cursor().apply { addDocument(documentId) }

    override fun queryChildDocuments(parentDocumentId: String, projection: Array<out String>?, sortOrder: String?): Cursor =
        cursor().apply { fileOf(parentDocumentId).list().orEmpty().sorted().forEach { addDocument("$parentDocumentId/$it") } }

    override fun openDocument(documentId: String, mode: String, signal: CancellationSignal?): ParcelFileDescriptor =
        ParcelFileDescriptor.open(fileOf(documentId), ParcelFileDescriptor.MODE_READ_ONLY)

    override fun isChildDocument(parentDocumentId: String, documentId: String): Boolean =
        documentId.startsWith("$parentDocumentId/")

    private fun cursor() = MatrixCursor(arrayOf(Document.COLUMN_DOCUMENT_ID, Document.COLUMN_DISPLAY_NAME, Document.COLUMN_MIME_TYPE))

    private fun MatrixCursor.addDocument(documentId: String) {
        val file = fileOf(documentId)
        addRow(arrayOf(documentId, file.name, if (file.isDirectory) Document.MIME_TYPE_DIR else "application/octet-stream"))
    }

    private fun fileOf(documentId: String): File = File(folder, documentId.removePrefix(ROOT_ID).trimStart('/'))

    companion object {
        const val AUTHORITY = "ai.edgefusion.demo.test.documents"
        const val ROOT_ID = "root"
        /** The folder the provider serves. */
        lateinit var folder: File
    }
}
