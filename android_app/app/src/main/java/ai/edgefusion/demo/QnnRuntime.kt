package ai.edgefusion.demo

import java.util.Properties

/** The QNN release the app ships, from qnn-runtime.properties (the file the Gradle build takes its versions from). */
object QnnRuntime {
    private val properties = Properties().apply {
        QnnRuntime::class.java.getResourceAsStream("/qnn-runtime.properties")!!.use { load(it) }
    }

    /** QNN SDK major.minor, compared with a bundle's target.min_runtime.qnn_sdk. */
    val sdkVersion: String = property("qnn.sdk")

    fun property(name: String): String = properties.getProperty(name) ?: error("qnn-runtime.properties has no $name")
}
