package ai.edgefusion.core

import kotlin.math.PI
import kotlin.math.cos
import kotlin.math.ln
import kotlin.math.sqrt

/**
 * Portable seeded Gaussian noise, bit-compatible with edgefusion_export/runtime/noise.py
 * (scheme "splitmix64-box-muller-v1"): stream 0 is the initial latent, stream k the noise after step k.
 */
object Noise {
    private const val GOLDEN = -0x61c8864680b583ebL // 0x9E3779B97F4A7C15
    private const val MIX1 = -0x40a7b892e31b1a47L // 0xBF58476D1CE4E5B9
    private const val MIX2 = -0x6b2fb644ecceee15L // 0x94D049BB133111EB
    private const val STREAM = -0x2e4ab5cd2e6d12fdL // 0xD1B54A32D192ED03

    fun splitmix64(counter: Long): Long {
        var z = counter * GOLDEN
        z = (z xor (z ushr 30)) * MIX1
        z = (z xor (z ushr 27)) * MIX2
        return z xor (z ushr 31)
    }

    fun gaussian(seed: Long, stream: Int, count: Int): FloatArray {
        val key = splitmix64(seed xor (stream.toLong() * STREAM))
        val scale = 1.0 / (1L shl 53)
        return FloatArray(count) { i ->
            val u1 = 1.0 - (splitmix64(key + 2L * i) ushr 11) * scale
            val u2 = (splitmix64(key + 2L * i + 1) ushr 11) * scale
            (sqrt(-2.0 * ln(u1)) * cos(2.0 * PI * u2)).toFloat()
        }
    }
}
