package ai.edgefusion.demo

import ai.edgefusion.core.Bundle
import ai.edgefusion.core.BundleException
import android.content.Context
import android.net.Uri
import androidx.documentfile.provider.DocumentFile
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

    /** A bundle folder the person picked with the system file picker. */
    fun fromTree(tree: Uri): Bundle {
        val folder = DocumentFile.fromTreeUri(context, tree) ?: throw BundleException("cannot open the picked folder; pick it again")
        root.deleteRecursively()
        copyDocumentTree(folder, root)
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

    private fun copyDocumentTree(folder: DocumentFile, target: File) {
        target.mkdirs()
        for (child in folder.listFiles()) {
            val name = child.name ?: continue
            if (name.contains('/') || name == ".." ) continue
            if (child.isDirectory) {
                copyDocumentTree(child, File(target, name))
            } else {
                context.contentResolver.openInputStream(child.uri)?.use { input ->
                    File(target, name).outputStream().use { input.copyTo(it) }
                }
            }
        }
    }
}
