package ai.edgefusion.core

import com.google.gson.JsonObject
import com.google.gson.JsonParser
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.abs
import kotlin.math.log10

/** Parity with the Python host runner, on vectors that `python -m tests.golden` writes. */
class GoldenTest {
    private val folder = File(System.getProperty("golden.dir") ?: "../../build/golden")
    private val golden: JsonObject by lazy {
        val file = File(folder, "golden.json")
        check(file.isFile) { "run 'python -m tests.golden ${folder.path}' first (make test does)" }
        JsonParser.parseString(file.readText()).asJsonObject
    }
    private val bundleFolder get() = File(folder, "bundle")

    @Test
    fun `tokenizer matches Python on every golden prompt, with every vocabulary`() {
        val vocabularies = golden.getAsJsonArray("tokenizers").map { it.asJsonObject }
        assertTrue(vocabularies.any { it["vocabulary"].asString == "built-in vocabulary" })  // what a fresh clone has
        for (spec in vocabularies) {
            val tokenizer = ClipTokenizer.fromFiles(File(spec["vocab_file"].asString), File(spec["merges_file"].asString))
            val cases = spec.getAsJsonArray("cases")
            assertTrue(cases.size() >= 10)
            val mismatches = cases.map { it.asJsonObject }.filter { case ->
                val expected = case.getAsJsonArray("ids").map { it.asInt }.toIntArray()
                !expected.contentEquals(tokenizer.encode(case["prompt"].asString))
            }.map { it["prompt"].asString }
            assertEquals(emptyList<String>(), mismatches, spec["vocabulary"].asString)
        }
    }

    @Test
    fun `seeded noise is bit compatible with Python`() {
        for (element in golden.getAsJsonArray("noise")) {
            val case = element.asJsonObject
            val expected = case.getAsJsonArray("values").map { it.asFloat }.toFloatArray()
            val ours = Noise.gaussian(case["seed"].asLong, case["stream"].asInt, expected.size)
            for (i in expected.indices) assertEquals(expected[i], ours[i], 1e-6f * (1 + abs(expected[i])))
        }
    }

    @Test
    fun `manifest sampling plan matches the Python scheduler`() {
        val bundle = Bundle.load(bundleFolder)
        val plan = bundle.sampling
        val python = golden.getAsJsonObject("plan")
        val steps = python.getAsJsonArray("steps").map { it.asJsonObject }
        assertEquals(steps.map { it["timestep"].asInt }, plan.steps.map { it.timestep })
        assertEquals(listOf(999, 499), plan.steps.map { it.timestep })
        steps.zip(plan.steps).forEach { (expected, ours) ->
            assertEquals(expected["alpha_cumprod"].asDouble, ours.alphaCumprod, 1e-12)
            assertEquals(expected["alpha_cumprod_prev"].asDouble, ours.alphaCumprodPrev, 1e-12)
            assertEquals(expected["c_skip"].asDouble, ours.cSkip, 1e-15)
            assertEquals(expected["c_out"].asDouble, ours.cOut, 1e-12)
        }
        val embedding = python.getAsJsonArray("guidance_embedding").map { it.asFloat }.toFloatArray()
        assertArrayEquals(embedding, plan.guidanceEmbedding)
        assertEquals(python.getAsJsonArray("latent_shape").map { it.asLong }, bundle.size().latentShape)
    }

    private fun assertMatchesHostRunner(
        bundle: File, image: String, soc: String?, minPsnr: Double, qnn: QnnProvider = QnnProvider(),
        size: String? = null, shape: List<Int> = golden.getAsJsonArray("image_shape").map { it.asInt },
    ): List<ProviderChoice> {
        val bytes = File(folder, image).readBytes()
        val expected = FloatArray(bytes.size / 4).also { ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(it) }
        Text2ImagePipeline(Bundle.load(bundle), providers = listOf("qnn", "cpu"), qnn = qnn, soc = soc).use { pipeline ->
            val generation = pipeline.generate(golden["prompt"].asString, golden["seed"].asLong, size = size)
            assertEquals(shape[1], generation.height)
            assertEquals(shape[2], generation.width)
            val mse = expected.indices.sumOf { i -> (expected[i] - generation.rgb[i]).toDouble().let { it * it } } / expected.size
            val psnr = 10 * log10(1.0 / mse)
            println("Kotlin core vs Python host runner on ${bundle.name}${size?.let { " at $it" } ?: ""}: PSNR ${"%.1f".format(psnr)} dB; providers ${pipeline.choices}")
            assertTrue(psnr >= minPsnr, "PSNR $psnr dB (at least $minPsnr)")
            assertEquals(generation.width * generation.height, generation.argbPixels().size)
            return pipeline.choices
        }
    }

    @Test
    fun `end to end image matches the host runner`() {
        val choices = assertMatchesHostRunner(bundleFolder, "host_image.f32", soc = null, minPsnr = 120.0) // measured 139.9 dB
        assertTrue(choices.all { it.provider == "cpu" && "no NPU model" in it.reason })
    }

    @Test
    fun `a bundle of two sizes draws each size like the host runner and refuses a size it lacks`() {
        val sizesFolder = File(folder, "sizes-bundle")
        val cases = golden.getAsJsonArray("sizes").map { it.asJsonObject }
        assertEquals(cases.map { it["size"].asString }, Bundle.load(sizesFolder).sizes.map { it.label })
        for (case in cases) {
            val choices = assertMatchesHostRunner(sizesFolder, case["image"].asString, soc = null, minPsnr = 120.0,
                size = case["size"].asString, shape = case.getAsJsonArray("image_shape").map { it.asInt })
            assertEquals(listOf("text_encoder", "unet", "vae_decoder", "unet", "vae_decoder").take(choices.size), choices.map { it.component })
        }
        Text2ImagePipeline(Bundle.load(sizesFolder), providers = listOf("cpu")).use { pipeline ->
            val error = assertThrows<BundleException> { pipeline.generate("a cat", 1L, size = "96x64") }
            assertEquals("this bundle has no 96x64 graphs; it generates 64x64, 128x64 (rebuild it with --size 96x64 to add it)", error.message)
        }
    }

    @Test
    fun `a compiled-only bundle loads and says what to rebuild where its models cannot run`() {
        val bundle = Bundle.load(File(folder, "snapdragon-compiled-only"))
        assertTrue(bundle.components.values.all { it.file == null && it.compiled.isNotEmpty() })
        for (soc in listOf("SM8650", "SM7325")) {
            val error = org.junit.jupiter.api.assertThrows<BundleException> { Text2ImagePipeline(bundle, soc = soc) }
            assertTrue("ships compiled NPU models for snapdragon-8-gen-3 (SM8650) only" in error.message!!, error.message)
            assertTrue("--chipset for this phone's SoC ($soc)" in error.message!! && "--ship both" in error.message!!, error.message)
        }
    }

    @Test
    fun `a bundle with a tiny VAE decoder runs like any other`() {
        val folderOfBundle = File(folder, "tiny-decoder-bundle")
        val decoder = Bundle.load(folderOfBundle).manifest.getAsJsonObject("model")["vae_decoder"].asString
        assertTrue(decoder.startsWith("AutoencoderTiny"), decoder)
        assertMatchesHostRunner(folderOfBundle, "host_image_tiny_decoder.f32", soc = null, minPsnr = 120.0)
    }

    @Test
    fun `snapdragon bundle picks the compiled model for the SoC and falls back to the CPU without QNN`() {
        val folderOfBundle = File(folder, "snapdragon-bundle")
        val bundle = Bundle.load(folderOfBundle)
        assertEquals(listOf(ChipsetTarget("snapdragon-8-gen-3", "SM8650")), bundle.chipsets)
        for (component in listOf("text_encoder", "unet", "vae_decoder")) {
            val compiled = bundle.compiledModel(component, "SM8650")!!
            assertTrue(compiled.isFile && compiled.name == "$component.snapdragon-8-gen-3.onnx", compiled.path)
            assertEquals(null, bundle.compiledModel(component, "SM7325"))
        }
        val choices = assertMatchesHostRunner(folderOfBundle, "host_image_snapdragon.f32", soc = "SM8650", minPsnr = 60.0) // QDQ: 70.4 dB
        assertTrue(choices.all { it.provider == "cpu" && "libonnxruntime_providers_qnn.so" in it.reason }, choices.toString())
    }

    @Test
    fun `the compiled models run on QNN's HTP backend and draw the host runner's image`() {
        val library = System.getProperty("qnn.ep.library")?.takeIf { it.isNotEmpty() } ?: error("pass -Dqnn.ep.library=PATH of onnxruntime-qnn's provider library (make test does)")
        // The x86_64 HTP backend emulates the chipset the binaries were compiled for: the 8 Gen 3's v75 (QNN soc_model 57).
        val qnn = QnnProvider(library, mapOf("backend_type" to "htp", "htp_arch" to "75", "soc_model" to "57"))
        val choices = assertMatchesHostRunner(File(folder, "snapdragon-bundle"), "host_image_snapdragon.f32", "SM8650", minPsnr = 65.0, qnn) // 68.4 dB
        assertEquals(listOf("qnn"), choices.map { it.provider }.distinct())
    }

    @Test
    fun `a QNN runtime older than the bundle's minimum falls back to the CPU with the reason`() {
        val bundle = Bundle.load(File(folder, "snapdragon-bundle"))
        val required = bundle.minQnnRuntime!!
        assertTrue(Bundle.compareVersions(required, "2.33") > 0, required)
        Text2ImagePipeline(bundle, soc = "SM8650", qnnRuntimeVersion = "2.33").use { pipeline ->
            assertEquals(listOf("cpu"), pipeline.choices.map { it.provider }.distinct())
            assertTrue(pipeline.choices.all { "need QNN >= $required and this app ships QNN 2.33" in it.reason }, pipeline.choices.toString())
        }
        Text2ImagePipeline(bundle, soc = "SM8650", qnnRuntimeVersion = required).use { pipeline ->
            assertTrue(pipeline.choices.none { "need QNN" in it.reason }, pipeline.choices.toString()) // the NPU model is tried
        }
        assertTrue(Bundle.compareVersions("2.9", "2.10") < 0 && Bundle.compareVersions("v2.51.0", "2.51") == 0)
    }

    @Test
    fun `altered bundle file is refused`(@org.junit.jupiter.api.io.TempDir temp: File) {
        val copy = File(temp, "bundle")
        bundleFolder.copyRecursively(copy)
        val weights = File(copy, "unet.onnx.data")
        val data = weights.readBytes()
        data[100] = (data[100].toInt() xor 0xFF).toByte()
        weights.writeBytes(data)
        val error = assertThrows<BundleException> { Bundle.load(copy) }
        assertTrue("checksum" in error.message!!)
    }

    @Test
    fun `manifest naming a file outside the bundle is refused`(@org.junit.jupiter.api.io.TempDir temp: File) {
        val copy = File(temp, "bundle")
        bundleFolder.copyRecursively(copy)
        val manifestFile = File(copy, "manifest.json")
        manifestFile.writeText(manifestFile.readText().replace("\"file\": \"unet.onnx\"", "\"file\": \"../unet.onnx\""))
        val error = assertThrows<BundleException> { Bundle.load(copy) }
        assertTrue("outside the bundle" in error.message!!, error.message)
    }
}
