package ai.edgefusion.core

import com.google.gson.JsonObject
import com.google.gson.JsonParser
import java.io.File
import java.security.MessageDigest

/** A problem with the bundle or the device that the person can act on; the message says what to do. */
class BundleException(message: String) : Exception(message)

data class TensorSpec(val name: String, val shape: List<Long>, val dtype: String)

/**
 * One graph of a component ([component]: text_encoder, unet or vae_decoder) for one image [size] (null for a
 * component whose shapes do not depend on it). [file]: the portable ONNX, null in a bundle that ships compiled
 * models only; [sharedWeights]: the weights file its sizes' graphs share; [compiled]: chipset name -> the
 * NPU-compiled (EPContext) model file for that chipset.
 */
data class Component(
    val component: String,
    val size: String?,
    val file: String?,
    val sharedWeights: String?,
    val precision: String,
    val inputs: List<TensorSpec>,
    val outputs: List<TensorSpec>,
    val compiled: Map<String, String> = emptyMap(),
)

/** An image size the bundle generates ([label] WIDTHxHEIGHT) and the graph of each component that draws it. */
data class ImageSize(val label: String, val width: Int, val height: Int, val latentShape: List<Long>, val graphs: Map<String, String>)

data class ChipsetTarget(val name: String, val soc: String)

data class SamplingStep(
    val timestep: Int,
    val alphaCumprod: Double,
    val alphaCumprodPrev: Double,
    val cSkip: Double,
    val cOut: Double,
)

data class SamplingPlan(
    val steps: List<SamplingStep>,
    val guidanceScale: Double,
    val guidanceEmbedding: FloatArray?,
    val noiseScheme: String,
)

data class TokenizerSpec(val vocabFile: String, val mergesFile: String, val maxLength: Int, val padId: Int)

/**
 * A bundle written by `edgefusion-export compile`, read from [folder] and checked before use:
 * schema major version, file names confined to the folder, and the sha256 of every listed file.
 */
class Bundle private constructor(val folder: File, val manifest: JsonObject) {
    val components: Map<String, Component> = manifest.getAsJsonObject("components").entrySet().associate { (name, value) ->
        val component = value.asJsonObject
        name to Component(
            component["component"].asString,
            component["size"]?.takeUnless { it.isJsonNull }?.asString,
            component["file"]?.asString,
            component["shared_weights"]?.asString,
            component["precision"].asString,
            tensors(component, "inputs"),
            tensors(component, "outputs"),
            component.getAsJsonObject("compiled")?.entrySet()?.associate { (chipset, entry) ->
                chipset to entry.asJsonObject.getAsJsonObject("offline")["file"].asString
            } ?: emptyMap(),
        )
    }

    /** The image sizes the bundle generates, its default first. */
    val sizes: List<ImageSize> = manifest.getAsJsonObject("sizes").entrySet().map { (label, value) ->
        val size = value.asJsonObject
        ImageSize(label, size["width"].asInt, size["height"].asInt, size.getAsJsonArray("latent_shape").map { it.asLong },
            size.getAsJsonObject("graphs").entrySet().associate { (component, graph) -> component to graph.asString })
    }

    /** The size [label] (WIDTHxHEIGHT; null: the bundle's default), or the sizes the bundle has in the message. */
    fun size(label: String? = null): ImageSize = if (label == null) sizes.first() else sizes.firstOrNull { it.label == label }
        ?: throw BundleException("this bundle has no $label graphs; it generates ${sizes.joinToString { it.label }} (rebuild it with --size $label to add it)")

    /** The Snapdragon chipsets the bundle was compiled for (empty for a CPU bundle). */
    val chipsets: List<ChipsetTarget> = manifest.getAsJsonObject("target")?.getAsJsonArray("chipsets")?.map {
        val chipset = it.asJsonObject
        ChipsetTarget(chipset["name"].asString, chipset["soc"].asString)
    } ?: emptyList()

    /** The oldest QNN runtime (e.g. "2.51") that loads the bundle's context binaries (target.min_runtime.qnn_sdk). */
    val minQnnRuntime: String? = manifest.getAsJsonObject("target")?.getAsJsonObject("min_runtime")
        ?.get("qnn_sdk")?.asString?.takeIf { it.isNotEmpty() }

    /** The NPU model of [graph] (a key of [components]) for a phone whose SoC is [soc] (e.g. "SM8650"), if the bundle has one. */
    fun compiledModel(graph: String, soc: String?): File? {
        val chipset = chipsets.firstOrNull { soc != null && it.soc.equals(soc, ignoreCase = true) } ?: return null
        return components[graph]?.compiled?.get(chipset.name)?.let { file(it) }
    }

    val sampling: SamplingPlan = manifest.getAsJsonObject("sampling").let { sampling ->
        SamplingPlan(
            steps = sampling.getAsJsonArray("steps").map { element ->
                val step = element.asJsonObject
                SamplingStep(
                    step["timestep"].asInt, step["alpha_cumprod"].asDouble, step["alpha_cumprod_prev"].asDouble,
                    step["c_skip"].asDouble, step["c_out"].asDouble,
                )
            },
            guidanceScale = sampling["guidance_scale"].asDouble,
            guidanceEmbedding = sampling["guidance_embedding"].takeUnless { it.isJsonNull }
                ?.asJsonArray?.map { it.asFloat }?.toFloatArray(),
            noiseScheme = sampling["noise"].asString,
        )
    }

    val tokenizer: TokenizerSpec = manifest.getAsJsonObject("tokenizer").let {
        TokenizerSpec(it["vocab_file"].asString, it["merges_file"].asString, it["max_length"].asInt, it["pad_id"].asInt)
    }

    /** The file [name] of this bundle; names that would leave the folder are refused. */
    fun file(name: String): File = confined(folder, name)

    companion object {
        const val SCHEMA_MAJOR = "2"
        const val NOISE_SCHEME = "splitmix64-box-muller-v1"

        /** Compare dotted version numbers numerically ("2.9" < "2.10"); missing parts count as 0. */
        fun compareVersions(a: String, b: String): Int {
            val left = a.trimStart('v').split('.').map { it.toIntOrNull() ?: 0 }
            val right = b.trimStart('v').split('.').map { it.toIntOrNull() ?: 0 }
            for (index in 0 until maxOf(left.size, right.size)) {
                val difference = left.getOrElse(index) { 0 }.compareTo(right.getOrElse(index) { 0 })
                if (difference != 0) return difference
            }
            return 0
        }

        /** Load and verify the bundle in [folder]; throws [BundleException] with the fix in its message. */
        fun load(folder: File, verify: Boolean = true): Bundle {
            val manifestFile = File(folder, "manifest.json")
            if (!manifestFile.isFile) {
                throw BundleException("$folder is not a bundle (no manifest.json); build one with 'edgefusion-export compile'")
            }
            val manifest = try {
                JsonParser.parseString(manifestFile.readText()).asJsonObject
            } catch (error: Exception) {
                throw BundleException("manifest.json is not valid JSON (${error.message}); rebuild the bundle")
            }
            val version = manifest["schema_version"]?.asString ?: "?"
            if (version.substringBefore('.') != SCHEMA_MAJOR) {
                throw BundleException("bundle schema $version is not supported by this app (reads $SCHEMA_MAJOR.x); rebuild it or update the app")
            }
            for (key in listOf("sizes", "components", "sampling", "tokenizer", "files")) {
                if (manifest[key]?.isJsonObject != true) throw BundleException("manifest.json has no '$key'; rebuild the bundle")
            }
            val bundle = Bundle(folder, manifest)
            if (bundle.sampling.noiseScheme != NOISE_SCHEME) {
                throw BundleException("bundle uses noise scheme ${bundle.sampling.noiseScheme}; update the app")
            }
            val files = manifest.getAsJsonObject("files")
            for (size in bundle.sizes) {
                for ((component, graph) in size.graphs) {
                    if (bundle.components[graph]?.component != component) {
                        throw BundleException("bundle names graph '$graph' for $component at ${size.label}, which it does not have; rebuild the bundle")
                    }
                }
            }
            val referenced = bundle.components.values.flatMap { listOfNotNull(it.file, it.sharedWeights) + it.compiled.values } +
                listOf(bundle.tokenizer.vocabFile, bundle.tokenizer.mergesFile)
            for (name in referenced) {
                bundle.file(name)
                if (!files.has(name)) throw BundleException("bundle uses $name without a checksum; rebuild the bundle")
            }
            for ((name, entry) in files.entrySet()) {
                val file = bundle.file(name)
                if (!file.isFile) throw BundleException("bundle file $name is missing; copy the whole bundle again")
                if (verify) {
                    val expected = entry.asJsonObject
                    if (file.length() != expected["size"].asLong || sha256(file) != expected["sha256"].asString) {
                        throw BundleException("bundle file $name does not match its checksum (altered or corrupt); copy the bundle again")
                    }
                }
            }
            return bundle
        }

        private fun tensors(component: JsonObject, key: String): List<TensorSpec> =
            component.getAsJsonArray(key).map { element ->
                val spec = element.asJsonObject
                TensorSpec(spec["name"].asString, spec.getAsJsonArray("shape").map { it.asLong }, spec["dtype"].asString)
            }

        internal fun confined(folder: File, name: String): File {
            val root = folder.canonicalFile
            val file = File(root, name).canonicalFile
            if (name.startsWith("/") || name.contains('\\') || name.split('/').contains("..") || !file.path.startsWith(root.path + File.separator)) {
                throw BundleException("bundle manifest names a file outside the bundle ('$name'); refusing to load it")
            }
            return file
        }

        fun sha256(file: File): String {
            val digest = MessageDigest.getInstance("SHA-256")
            file.inputStream().use { input ->
                val buffer = ByteArray(1 shl 20)
                while (true) {
                    val read = input.read(buffer)
                    if (read < 0) break
                    digest.update(buffer, 0, read)
                }
            }
            return digest.digest().joinToString("") { "%02x".format(it) }
        }
    }
}
