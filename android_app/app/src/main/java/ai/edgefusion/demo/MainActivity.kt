package ai.edgefusion.demo

import ai.edgefusion.core.Bundle
import ai.edgefusion.core.Generation
import ai.edgefusion.core.Text2ImagePipeline
import android.graphics.Bitmap
import android.net.Uri
import android.os.Bundle as SavedState
import android.text.InputType
import android.widget.Button
import android.widget.EditText
import android.widget.ImageView
import android.widget.LinearLayout
import android.widget.TextView
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.lifecycle.lifecycleScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/** Prompt, seed, Generate, the image and per-stage timings. All inference runs off the main thread. */
class MainActivity : AppCompatActivity() {
    private lateinit var prompt: EditText
    private lateinit var seed: EditText
    private lateinit var generate: Button
    private lateinit var image: ImageView
    private lateinit var status: TextView
    private var pipeline: Text2ImagePipeline? = null

    private val pickFolder = registerForActivityResult(ActivityResultContracts.OpenDocumentTree()) { uri: Uri? ->
        if (uri != null) open { BundleStore(this).fromTree(uri) }
    }

    override fun onCreate(savedInstanceState: SavedState?) {
        super.onCreate(savedInstanceState)
        prompt = EditText(this).apply { hint = "Prompt"; setText("a photo of a red fox in the snow") }
        seed = EditText(this).apply { hint = "Seed"; inputType = InputType.TYPE_CLASS_NUMBER; setText("42") }
        generate = Button(this).apply { text = "Generate"; isEnabled = false; setOnClickListener { onGenerate() } }
        val pick = Button(this).apply { text = "Open bundle folder"; setOnClickListener { pickFolder.launch(null) } }
        image = ImageView(this).apply { adjustViewBounds = true }
        status = TextView(this)
        setContentView(LinearLayout(this).apply {
            orientation = LinearLayout.VERTICAL
            setPadding(32, 32, 32, 32)
            listOf(prompt, seed, generate, pick, image, status).forEach { addView(it) }
        })
        open { BundleStore(this).fromAssets() }
    }

    private fun open(load: () -> Bundle) {
        status.text = "Loading bundle..."
        lifecycleScope.launch {
            try {
                val opened = withContext(Dispatchers.IO) { Text2ImagePipeline(load(), listOf("qnn", "cpu"), nativeLibraryDir(), socModel()) }
                pipeline?.close()
                pipeline = opened
                generate.isEnabled = true
                status.text = opened.choices.joinToString("\n") { "${it.component}: ${it.provider.uppercase()} (${it.reason})" }
            } catch (error: Exception) {
                status.text = "Cannot use the bundle: ${error.message}"
            }
        }
    }

    private fun onGenerate() {
        val current = pipeline ?: return
        val text = prompt.text.toString()
        val seedValue = seed.text.toString().toLongOrNull() ?: 0L
        generate.isEnabled = false
        status.text = "Generating..."
        lifecycleScope.launch {
            try {
                val result = withContext(Dispatchers.Default) { current.generate(text, seedValue) }
                image.setImageBitmap(result.toBitmap())
                status.text = result.timingsMs.entries.joinToString("\n") { (stage, ms) -> "%-14s %8.1f ms".format(stage, ms) }
            } catch (error: Exception) {
                status.text = "Generation failed: ${error.message}"
            } finally {
                generate.isEnabled = true
            }
        }
    }

    private fun nativeLibraryDir(): String = applicationInfo.nativeLibraryDir + "/libQnnHtp.so"

    private fun socModel(): String? =
        if (android.os.Build.VERSION.SDK_INT >= 31) android.os.Build.SOC_MODEL else null

    override fun onDestroy() {
        pipeline?.close()
        super.onDestroy()
    }
}

private fun Generation.toBitmap(): Bitmap =
    Bitmap.createBitmap(argbPixels(), width, height, Bitmap.Config.ARGB_8888)
