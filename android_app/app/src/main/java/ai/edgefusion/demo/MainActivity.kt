package ai.edgefusion.demo

import ai.edgefusion.core.Bundle
import ai.edgefusion.core.Generation
import ai.edgefusion.core.QnnProvider
import ai.edgefusion.core.Text2ImagePipeline
import android.app.Activity
import android.content.Intent
import android.graphics.Bitmap
import android.os.Build
import android.os.Bundle as SavedState
import android.text.InputType
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.EditText
import android.widget.ImageView
import android.widget.LinearLayout
import android.widget.Spinner
import android.widget.TextView
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.MainScope
import kotlinx.coroutines.cancel
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/**
 * Prompt, seed, the image size (those the bundle has), Generate, the image and, per component, the execution
 * provider and its time. Views are built in
 * code on the platform Activity (no androidx); all inference runs off the main thread. Tests find views by tag.
 */
class MainActivity : Activity() {
    private val scope = MainScope()
    private lateinit var prompt: EditText
    private lateinit var seed: EditText
    private lateinit var size: Spinner
    private lateinit var generate: Button
    private lateinit var image: ImageView
    private lateinit var status: TextView
    private var pipeline: Text2ImagePipeline? = null

    override fun onCreate(savedInstanceState: SavedState?) {
        super.onCreate(savedInstanceState)
        prompt = EditText(this).apply { tag = "prompt"; hint = "Prompt"; setText("a photo of a red fox in the snow") }
        seed = EditText(this).apply { tag = "seed"; hint = "Seed"; inputType = InputType.TYPE_CLASS_NUMBER; setText("42") }
        size = Spinner(this).apply { tag = "size" }
        generate = Button(this).apply { tag = "generate"; text = "Generate"; isEnabled = false; setOnClickListener { onGenerate() } }
        val pick = Button(this).apply { tag = "pick"; text = "Open bundle folder"; setOnClickListener { pickFolder() } }
        image = ImageView(this).apply { tag = "image"; adjustViewBounds = true }
        status = TextView(this).apply { tag = "status" }
        setContentView(LinearLayout(this).apply {
            orientation = LinearLayout.VERTICAL
            setPadding(32, 32, 32, 32)
            listOf(prompt, seed, size, generate, pick, image, status).forEach { addView(it) }
        })
        open { BundleStore(this).fromAssets() }
    }

    // Qualified: inside a View's listener an unqualified call would bind to View's hidden method of the same name.
    private fun pickFolder() = this@MainActivity.startActivityForResult(Intent(Intent.ACTION_OPEN_DOCUMENT_TREE), PICK_BUNDLE)

    @Deprecated("The platform Activity's result callback; the app has no androidx.activity")
    override fun onActivityResult(requestCode: Int, resultCode: Int, data: Intent?) {
        super.onActivityResult(requestCode, resultCode, data)
        val tree = data?.data
        if (requestCode == PICK_BUNDLE && resultCode == RESULT_OK && tree != null) open { BundleStore(this).fromTree(tree) }
    }

    private fun open(load: () -> Bundle) {
        status.text = "Loading bundle..."
        generate.isEnabled = false
        scope.launch {
            try {
                val opened = withContext(Dispatchers.IO) {
                    Text2ImagePipeline(load(), listOf("qnn", "cpu"), qnnProvider(), socModel(), QnnRuntime.sdkVersion)
                }
                pipeline?.close()
                pipeline = opened
                size.adapter = ArrayAdapter(this@MainActivity, android.R.layout.simple_spinner_item, opened.bundle.sizes.map { it.label })
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
        val sizeLabel = size.selectedItem as String?
        generate.isEnabled = false
        status.text = "Generating..."
        scope.launch {
            try {
                val result = withContext(Dispatchers.Default) { current.generate(text, seedValue, size = sizeLabel) }
                image.setImageBitmap(result.toBitmap())
                status.text = timingLines(result)
            } catch (error: Exception) {
                status.text = "Generation failed: ${error.message}"
            } finally {
                generate.isEnabled = true
            }
        }
    }

    // com.qualcomm.qti:onnxruntime-android-qnn's provider library; it finds qnn-runtime's libQnnHtp.so beside it.
    private fun qnnProvider() = QnnProvider(applicationInfo.nativeLibraryDir + "/libonnxruntime_providers_qnn.so")

    private fun socModel(): String? = if (Build.VERSION.SDK_INT >= 31) Build.SOC_MODEL else null

    override fun onDestroy() {
        scope.cancel()
        pipeline?.close()
        super.onDestroy()
    }

    private companion object {
        const val PICK_BUNDLE = 1
    }
}

/** One line per timed stage: "unet_step_1  QNN  45.1 ms"; a stage's provider is its component's. */
internal fun timingLines(result: Generation): String =
    result.timingsMs.entries.joinToString("\n") { (stage, ms) ->
        val provider = result.providers.entries.firstOrNull { stage.startsWith(it.key) }?.value?.uppercase() ?: ""
        "%-14s %-4s %8.1f ms".format(stage, provider, ms)
    }

private fun Generation.toBitmap(): Bitmap =
    Bitmap.createBitmap(argbPixels(), width, height, Bitmap.Config.ARGB_8888)
