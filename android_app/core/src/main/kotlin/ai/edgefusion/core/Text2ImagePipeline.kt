package ai.edgefusion.core

import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtException
import ai.onnxruntime.OrtSession
import java.nio.FloatBuffer
import java.nio.IntBuffer

/** Which execution provider a component's graph ([graph]: a key of the bundle's components) ended up on, and why. */
data class ProviderChoice(val component: String, val graph: String, val provider: String, val reason: String)

/** The generated image as ARGB pixels, with per-stage timings in milliseconds and each component's provider. */
class Generation(
    val width: Int, val height: Int, val rgb: FloatArray, val timingsMs: Map<String, Double>, val providers: Map<String, String>,
) {
    /** Packed 0xAARRGGBB pixels, row-major (what android.graphics.Bitmap.setPixels takes). */
    fun argbPixels(): IntArray = IntArray(width * height) { index ->
        val plane = width * height
        fun channel(c: Int): Int = Math.round(rgb[c * plane + index].coerceIn(0f, 1f) * 255f)
        (0xFF shl 24) or (channel(0) shl 16) or (channel(1) shl 8) or channel(2)
    }
}

/**
 * The LCM text-to-image loop on onnxruntime, driven only by the bundle's manifest; the Kotlin twin of
 * edgefusion_export/runtime/pipeline.py. Execution providers are tried in [providers] order: "qnn" loads the
 * bundle's compiled model for the phone's SoC ([soc], e.g. android.os.Build.SOC_MODEL) on the Hexagon NPU,
 * "cpu" the portable ONNX. [qnnRuntimeVersion] is the QNN SDK version of the QNN libraries the app ships (e.g.
 * "2.51"): a bundle whose context binaries need a newer runtime (target.min_runtime.qnn_sdk) falls back to the CPU
 * with that reason instead of failing to load on the phone; null tries the NPU model regardless. The default
 * size's graphs are opened at once (so a bundle this device cannot run is refused up front), another size's on
 * its first [generate].
 */
class Text2ImagePipeline(
    val bundle: Bundle,
    providers: List<String> = listOf("qnn", "cpu"),
    private val qnn: QnnProvider = QnnProvider(),
    private val soc: String? = null,
    private val qnnRuntimeVersion: String? = null,
) : AutoCloseable {
    private val environment: OrtEnvironment = OrtEnvironment.getEnvironment()
    val tokenizer: ClipTokenizer = ClipTokenizer.fromFiles(
        bundle.file(bundle.tokenizer.vocabFile), bundle.file(bundle.tokenizer.mergesFile),
        bundle.tokenizer.maxLength, bundle.tokenizer.padId,
    )
    private val providers = providers.toList()
    val choices = mutableListOf<ProviderChoice>()
    private val sessions = mutableMapOf<String, OrtSession>()
    private val plan = bundle.sampling

    init {
        bundle.size().graphs.values.forEach { session(it) }
    }

    private fun session(graph: String): OrtSession = sessions.getOrPut(graph) {
        val component = bundle.components.getValue(graph)
        openSession(component.component, graph, component.file?.let { bundle.file(it).path })
    }

    private fun openSession(component: String, graph: String, portable: String?): OrtSession {
        val failures = mutableListOf<String>()
        for (provider in providers) {
            try {
                val options = OrtSession.SessionOptions()
                val path = if (provider == "qnn") {
                    val compiled = bundle.compiledModel(graph, soc)
                    if (compiled == null) {
                        failures.add("qnn skipped: the bundle has no NPU model for SoC ${soc ?: "unknown"}")
                        continue
                    }
                    val required = bundle.minQnnRuntime
                    if (required != null && qnnRuntimeVersion != null && Bundle.compareVersions(qnnRuntimeVersion, required) < 0) {
                        failures.add("qnn skipped: the NPU models need QNN >= $required and this app ships QNN $qnnRuntimeVersion; " +
                            "update the app's QNN runtime")
                        continue
                    }
                    options.addExecutionProvider(qnn.devices(environment), qnn.options)
                    compiled.path
                } else {
                    if (portable == null) {
                        failures.add("$provider skipped: the bundle ships no portable model")
                        continue
                    }
                    portable
                }
                val session = environment.createSession(path, options)
                choices.add(ProviderChoice(component, graph, provider, failures.joinToString("; ").ifEmpty { "first choice" }))
                return session
            } catch (error: OrtException) {
                failures.add("$provider unavailable: ${error.message?.lineSequence()?.first()}")
            }
        }
        val fix = if (portable == null) {
            "this bundle ships compiled NPU models for ${bundle.chipsets.joinToString { "${it.name} (${it.soc})" }} only; rebuild it " +
                "with --chipset for this phone's SoC (${soc ?: "unknown"}), or with --ship both for a CPU fallback"
        } else {
            "use a bundle built for this device"
        }
        throw BundleException("no execution provider could load $graph (${failures.joinToString("; ")}); $fix")
    }

    fun encodePrompt(prompt: String, graphs: Map<String, String> = bundle.size().graphs): FloatArray {
        val ids = tokenizer.encode(prompt)
        OnnxTensor.createTensor(environment, IntBuffer.wrap(ids), longArrayOf(1, ids.size.toLong())).use { input ->
            return run(graphs.getValue("text_encoder"), mapOf("input_ids" to input))
        }
    }

    /**
     * Generate at [size] (WIDTHxHEIGHT, one of [Bundle.sizes]; null: the bundle's default) with seeded noise
     * ([Noise]); [latent] and [stepNoise] override it for exact comparisons.
     */
    fun generate(
        prompt: String, seed: Long, latent: FloatArray? = null, stepNoise: List<FloatArray>? = null, size: String? = null,
    ): Generation {
        val image = bundle.size(size)
        val graphs = image.graphs
        val providers = graphs.mapValues { (_, graph) -> session(graph); choices.last { it.graph == graph }.provider }
        val latentSize = image.latentShape.fold(1L) { a, b -> a * b }.toInt()
        val timings = linkedMapOf<String, Double>()
        val start = System.nanoTime()
        val embeddings = encodePrompt(prompt, graphs)
        timings["text_encoder"] = millisSince(start)
        var x = latent ?: Noise.gaussian(seed, 0, latentSize)
        var denoised = x
        plan.steps.forEachIndexed { index, step ->
            val stepStart = System.nanoTime()
            val eps = predictNoise(graphs.getValue("unet"), x, step.timestep, embeddings)
            val noise = if (index + 1 < plan.steps.size) stepNoise?.get(index) ?: Noise.gaussian(seed, index + 1, latentSize) else null
            val (next, clean) = LcmScheduler.step(step, x, eps, noise)
            x = next
            denoised = clean
            timings["unet_step_${index + 1}"] = millisSince(stepStart)
        }
        val decodeStart = System.nanoTime()
        val rgb = tensor(denoised, image.latentShape).use { run(graphs.getValue("vae_decoder"), mapOf("latent" to it)) }
        timings["vae_decoder"] = millisSince(decodeStart)
        timings["total"] = millisSince(start)
        return Generation(image.width, image.height, rgb, timings, providers)
    }

    private fun predictNoise(unet: String, latent: FloatArray, timestep: Int, embeddings: FloatArray): FloatArray {
        val inputs = bundle.components.getValue(unet).inputs.associate { spec ->
            spec.name to when (spec.name) {
                "latent" -> tensor(latent, spec.shape)
                "timestep" -> tensor(floatArrayOf(timestep.toFloat()), spec.shape)
                "text_embeddings" -> tensor(embeddings, spec.shape)
                "guidance_embedding" -> tensor(plan.guidanceEmbedding ?: throw BundleException("bundle has no guidance embedding for its UNet; rebuild it"), spec.shape)
                else -> throw BundleException("unknown UNet input ${spec.name}; update the app")
            }
        }
        try {
            return run(unet, inputs)
        } finally {
            inputs.values.forEach { it.close() }
        }
    }

    private fun tensor(values: FloatArray, shape: List<Long>): OnnxTensor =
        OnnxTensor.createTensor(environment, FloatBuffer.wrap(values), shape.toLongArray())

    private fun run(graph: String, inputs: Map<String, OnnxTensor>): FloatArray =
        session(graph).run(inputs).use { result ->
            val output = result.get(0) as OnnxTensor
            val buffer = output.floatBuffer
            FloatArray(buffer.remaining()).also { buffer.get(it) }
        }

    override fun close() = sessions.values.forEach { it.close() }

    private fun millisSince(start: Long): Double = (System.nanoTime() - start) / 1e6
}
