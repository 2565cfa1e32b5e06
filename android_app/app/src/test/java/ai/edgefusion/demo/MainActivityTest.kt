package ai.edgefusion.demo

import android.Manifest
import android.app.Activity
import android.content.Intent
import android.content.pm.ProviderInfo
import android.graphics.drawable.BitmapDrawable
import android.os.Looper
import android.provider.DocumentsContract
import android.view.View
import android.widget.Button
import android.widget.EditText
import android.widget.ImageView
import android.widget.Spinner
import android.widget.TextView
import com.google.gson.JsonParser
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Before
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import org.junit.runner.RunWith
import org.robolectric.Robolectric
import org.robolectric.RobolectricTestRunner
import org.robolectric.Shadows.shadowOf
import org.robolectric.annotation.Config
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.abs
import kotlin.math.roundToInt

/** The demo app under Robolectric: a real tiny bundle picked through the system folder picker, run by the core. */
@RunWith(RobolectricTestRunner::class)
@Config(sdk = [34], manifest = Config.NONE)
class MainActivityTest {
    @get:Rule
    val temp = TemporaryFolder()
    private val golden = File(System.getProperty("golden.dir") ?: "../../build/golden")
    private val goldenCase by lazy { JsonParser.parseString(File(golden, "golden.json").readText()).asJsonObject }

    @Before
    fun registerPicker() {
        val info = ProviderInfo().apply {
            authority = FolderDocumentsProvider.AUTHORITY
            exported = true
            grantUriPermissions = true
            readPermission = Manifest.permission.MANAGE_DOCUMENTS
            writePermission = Manifest.permission.MANAGE_DOCUMENTS
        }
        Robolectric.buildContentProvider(FolderDocumentsProvider::class.java).create(info)
    }

    @Test
    fun `without a packaged bundle the screen says how to get one`() {
        val activity = Robolectric.buildActivity(MainActivity::class.java).setup().get()
        waitFor(activity) { !status(activity).text.startsWith("Loading") }
        assertEquals("Cannot use the bundle: this app has no bundle in assets/bundle; run 'edgefusion-export package " +
            "BUNDLE android_app' or pick a folder", status(activity).text.toString())
        assertTrue(!view<Button>(activity, "generate").isEnabled)
    }

    @Test
    fun `a picked bundle draws the host runner's image and names each component's provider and time`() {
        val activity = pickBundle(File(golden, "bundle"))
        waitFor(activity) { !status(activity).text.startsWith("Loading") }
        val loaded = status(activity).text.toString()
        assertTrue(loaded, view<Button>(activity, "generate").isEnabled)
        for (component in listOf("text_encoder", "unet", "vae_decoder")) assertTrue(loaded, "$component: CPU" in loaded)

        view<EditText>(activity, "prompt").setText(goldenCase["prompt"].asString)
        view<EditText>(activity, "seed").setText(goldenCase["seed"].asString)
        view<Button>(activity, "generate").performClick()
        waitFor(activity) { !status(activity).text.startsWith("Generating") }
        assertNotNull(status(activity).text.toString(), view<ImageView>(activity, "image").drawable)

        val (_, height, width) = goldenCase.getAsJsonArray("image_shape").map { it.asInt }
        assertImageMatchesHost(activity, "host_image.f32", width, height)

        val lines = status(activity).text.lines()
        for (stage in listOf("text_encoder", "unet_step_1", "unet_step_2", "vae_decoder")) {
            assertTrue(lines.toString(), lines.any { Regex("^$stage +CPU +[0-9.]+ ms$").matches(it) })
        }
    }

    @Test
    fun `the app offers the bundle's sizes and draws the one picked`() {
        val activity = pickBundle(File(golden, "sizes-bundle"))
        waitFor(activity) { !status(activity).text.startsWith("Loading") }
        val sizes = view<Spinner>(activity, "size")
        val cases = goldenCase.getAsJsonArray("sizes").map { it.asJsonObject }
        assertEquals(cases.map { it["size"].asString }, (0 until sizes.count).map { sizes.getItemAtPosition(it) })
        val wide = cases.last()
        sizes.setSelection(cases.size - 1)
        view<EditText>(activity, "prompt").setText(goldenCase["prompt"].asString)
        view<EditText>(activity, "seed").setText(goldenCase["seed"].asString)
        view<Button>(activity, "generate").performClick()
        waitFor(activity) { !status(activity).text.startsWith("Generating") }
        val (_, height, width) = wide.getAsJsonArray("image_shape").map { it.asInt }
        assertImageMatchesHost(activity, wide["image"].asString, width, height)
    }

    @Test
    fun `the folder picker asks the system for a document tree`() {
        val activity = Robolectric.buildActivity(MainActivity::class.java).setup().get()
        view<Button>(activity, "pick").performClick()
        val request = shadowOf(activity).nextStartedActivityForResult
        assertNotNull(request)
        assertEquals(Intent.ACTION_OPEN_DOCUMENT_TREE, request.intent.action)
    }

    @Test
    fun `a tampered bundle is refused on screen`() {
        val tampered = temp.newFolder("bundle")
        File(golden, "bundle").copyRecursively(tampered)
        File(tampered, "unet.onnx.data").appendBytes(byteArrayOf(0))
        val activity = pickBundle(tampered)
        waitFor(activity) { !status(activity).text.startsWith("Loading") }
        val shown = status(activity).text.toString()
        assertTrue(shown, "unet.onnx.data" in shown && "checksum" in shown)
        assertTrue(!view<Button>(activity, "generate").isEnabled)
    }

    @Test
    fun `the QNN runtime the app ships is the one that compiled the bundles`() {
        val manifest = JsonParser.parseString(File(golden, "snapdragon-bundle/manifest.json").readText()).asJsonObject
        val required = manifest.getAsJsonObject("target").getAsJsonObject("min_runtime")
        val fix = "update app/src/main/resources/qnn-runtime.properties"
        assertEquals("the bundles are compiled by QNN ${required["qnn_sdk"].asString}: $fix", required["qnn_sdk"].asString, QnnRuntime.sdkVersion)
        assertEquals("the bundles are compiled by onnxruntime-qnn ${required["onnxruntime-qnn"].asString}: $fix",
            required["onnxruntime-qnn"].asString, QnnRuntime.property("onnxruntime.qnn.artifact"))
        assertTrue("qnn.runtime.artifact must be a QNN ${QnnRuntime.sdkVersion} release: $fix",
            QnnRuntime.property("qnn.runtime.artifact").startsWith(QnnRuntime.sdkVersion + "."))
        assertEquals("the JVM tests run onnxruntime ${System.getProperty("onnxruntime.version")}: $fix or android_app/pom.xml",
            System.getProperty("onnxruntime.version"), QnnRuntime.property("onnxruntime.android.artifact"))
    }

    private fun pickBundle(folder: File): Activity {
        FolderDocumentsProvider.folder = folder
        val activity = Robolectric.buildActivity(MainActivity::class.java).setup().get()
        waitFor(activity) { !status(activity).text.startsWith("Loading") } // the app has no bundle in its assets
        view<Button>(activity, "pick").performClick()
        val request = shadowOf(activity).nextStartedActivityForResult
        val tree = DocumentsContract.buildTreeDocumentUri(FolderDocumentsProvider.AUTHORITY, FolderDocumentsProvider.ROOT_ID)
        shadowOf(activity).receiveResult(request.intent, Activity.RESULT_OK, Intent().setData(tree))
        return activity
    }

    /** The image on screen against the host runner's [image] (float RGB planes): at most one level apart. */
    private fun assertImageMatchesHost(activity: Activity, image: String, width: Int, height: Int) {
        val bitmap = (view<ImageView>(activity, "image").drawable as BitmapDrawable).bitmap
        assertEquals(width, bitmap.width)
        assertEquals(height, bitmap.height)
        val bytes = File(golden, image).readBytes()
        val expected = FloatArray(bytes.size / 4).also { ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(it) }
        val plane = width * height
        var worst = 0
        for (index in 0 until plane) {
            val pixel = bitmap.getPixel(index % width, index / width)
            val rgb = intArrayOf(pixel shr 16 and 0xFF, pixel shr 8 and 0xFF, pixel and 0xFF)
            for (c in 0 until 3) {
                worst = maxOf(worst, abs(rgb[c] - (expected[c * plane + index].coerceIn(0f, 1f) * 255f).roundToInt()))
            }
        }
        assertTrue("the app's pixels differ from the host runner's by up to $worst levels", worst <= 1)
    }

    private fun status(activity: Activity): TextView = view(activity, "status")

    private fun <T : View> view(activity: Activity, tag: String): T = activity.window.decorView.findViewWithTag(tag)

    /** Runs the main looper until [done] holds: the app's coroutines post their results there. */
    private fun waitFor(activity: Activity, timeoutMs: Long = 120_000, done: () -> Boolean) {
        val deadline = System.currentTimeMillis() + timeoutMs
        while (!done()) {
            check(System.currentTimeMillis() < deadline) { "timed out; the screen says: ${status(activity).text}" }
            shadowOf(Looper.getMainLooper()).idle()
            Thread.sleep(20)
        }
    }
}
