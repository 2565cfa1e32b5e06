package ai.edgefusion.core

import kotlin.math.sqrt

/** The LCM update of the manifest's sampling plan (see the schema's description of "sampling"). */
object LcmScheduler {
    /** Returns (next latent, denoised latent); [noise] is null after the last step. */
    fun step(step: SamplingStep, latent: FloatArray, noisePrediction: FloatArray, noise: FloatArray?): Pair<FloatArray, FloatArray> {
        val sqrtAlpha = sqrt(step.alphaCumprod).toFloat()
        val sqrtBeta = sqrt(1.0 - step.alphaCumprod).toFloat()
        val cOut = step.cOut.toFloat()
        val cSkip = step.cSkip.toFloat()
        val denoised = FloatArray(latent.size) { i ->
            val x0 = (latent[i] - sqrtBeta * noisePrediction[i]) / sqrtAlpha
            cOut * x0 + cSkip * latent[i]
        }
        if (noise == null) return denoised to denoised
        val sqrtAlphaPrev = sqrt(step.alphaCumprodPrev).toFloat()
        val sqrtBetaPrev = sqrt(1.0 - step.alphaCumprodPrev).toFloat()
        val next = FloatArray(latent.size) { i -> sqrtAlphaPrev * denoised[i] + sqrtBetaPrev * noise[i] }
        return next to denoised
    }
}
