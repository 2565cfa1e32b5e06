import java.util.Properties

plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

// The QNN release the app ships, stated once; app/pom.xml's tests fail when it differs from the compiler's QNN.
val qnn = Properties().apply { file("src/main/resources/qnn-runtime.properties").inputStream().use { load(it) } }

android {
    namespace = "ai.edgefusion.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "ai.edgefusion.demo"
        minSdk = 29
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        ndk { abiFilters += "arm64-v8a" }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
    // Bundles are large and already compressed where it matters; keep them memory-mappable.
    androidResources { noCompress += listOf("onnx", "data", "bin") }
    packaging { jniLibs { useLegacyPackaging = true } }
    testOptions { unitTests.all { it.systemProperty("golden.dir", rootDir.resolve("../build/golden").path) } }
}

dependencies {
    implementation(project(":core"))
    implementation("com.microsoft.onnxruntime:onnxruntime-android:${qnn.getProperty("onnxruntime.android.artifact")}")
    // The QNN execution provider plugin and the QNN libraries (libQnnHtp.so, per-arch skels) it runs the bundle on.
    implementation("com.qualcomm.qti:onnxruntime-android-qnn:${qnn.getProperty("onnxruntime.qnn.artifact")}")
    implementation("com.qualcomm.qti:qnn-runtime:${qnn.getProperty("qnn.runtime.artifact")}")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
    testImplementation("junit:junit:4.13.2")
    testImplementation("org.robolectric:robolectric:4.16")
    testImplementation("com.microsoft.onnxruntime:onnxruntime:${qnn.getProperty("onnxruntime.android.artifact")}")
}
