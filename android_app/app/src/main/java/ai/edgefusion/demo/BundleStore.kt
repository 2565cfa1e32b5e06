package ai.edgefusion.demo

import ai.edgefusion.core.Bundle
import ai.edgefusion.core.BundleException
import android.content.Context
import android.net.Uri
import android.provider.DocumentsContract
import android.provider.DocumentsContract.Document
import java.io.File

/** Puts a bundle on local storage (onnxruntime needs file paths) and loads it with checksum verification. */
class BundleStore(private val context: Context) {
    private val root = File(context.filesDir, "bundle")

    /** The bundle packaged in the app's assets/bundle (installed by `edgefusion-export package`). */
    fun fromAssets(): Bundle {
        val names = context.assets.list("bundle").orEmpty()
        if ("manifest.json" !in names) {
            throw BundleException("this app has no bundle in assets/bundle; run 'edgefusion-export package BUNDLE android_app' or pick a folder")
        }
        copyAssetTree("bundle", root)
        return Bundle.load(root)
    }

    /** A bundle folder the person picked with ACTION_OPEN_DOCUMENT_TREE. */
    fun fromTree(tree: Uri): Bundle {
        root.deleteRecursively()
        copyDocumentTree(tree, DocumentsContract.getTreeDocumentId(tree), root)
        return Bundle.load(root)
    }

    private fun copyAssetTree(path: String, target: File) {
        val children = context.assets.list(path).orEmpty()
        if (children.isEmpty()) {
            if (target.isFile) return // already copied; Bundle.load verifies the checksum
            target.parentFile?.mkdirs()
            context.assets.open(path).use { input -> target.outputStream().use { input.copyTo(it) } }
            return
        }
        children.forEach { copyAssetTree("$path/$it", File(target, it)) }
    }

    private fun copyDocumentTree(tree: Uri, folderId: String, target: File) {
        target.mkdirs()
        val columns = arrayOf(Document.COLUMN_DOCUMENT_ID, Document.COLUMN_DISPLAY_NAME, Document.COLUMN_MIME_TYPE)
        val children = DocumentsContract.buildChildDocumentsUriUsingTree(tree, folderId)
        val cursor = context.contentResolver.query(children, columns, null, null)
            ?: throw BundleException("cannot list the picked folder; pick it again")
        cursor.use {
            while (it.moveToNext()) {
                val (id, name, mime) = Triple(it.getString(0), it.getString(1), it.getString(2))
                // Anything unsafe is left behind; Bundle.load then names the missing file.
                if (name.contains('/') || name == "." || name == "..") continue
                val file = File(target, name)
                if (mime == Document.MIME_TYPE_DIR) {
                    copyDocumentTree(tree, id, file)
                } else {
                    val uri = DocumentsContract.buildDocumentUriUsingTree(tree, id)
                    val input = context.contentResolver.openInputStream(uri) ?: throw BundleException("cannot read $name in the picked folder")
                    input.use { stream -> file.outputStream().use { stream.copyTo(it) } }
                }
            }
        }
    }
}
