package ai.edgefusion.core

import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtEpDevice
import ai.onnxruntime.OrtException

/**
 * onnxruntime's QNN execution provider, a plugin library (com.qualcomm.qti:onnxruntime-android-qnn on a phone, the
 * onnxruntime-qnn wheel's library on a desktop, whose HTP backend emulates the NPU). [library] is its path and
 * [options] the provider options ("backend_type" = "htp"; an emulator also needs "htp_arch" and "soc_model").
 */
class QnnProvider(
    val library: String = "libonnxruntime_providers_qnn.so",
    val options: Map<String, String> = mapOf("backend_type" to "htp"),
) {
    /** The QNN devices of [environment], registering the library once per process. */
    fun devices(environment: OrtEnvironment): List<OrtEpDevice> {
        synchronized(registered) {
            if (library !in registered) {
                environment.registerExecutionProviderLibrary(NAME, library)
                registered.add(library)
            }
        }
        return environment.epDevices.filter { it.epName == NAME }.ifEmpty {
            throw OrtException("the QNN execution provider in $library offers no device")
        }
    }

    private companion object {
        const val NAME = "QNNExecutionProvider"
        val registered = mutableSetOf<String>()
    }
}
