plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

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
}

dependencies {
    implementation(project(":core"))
    // Includes the QNN execution provider and Qualcomm's HTP libraries for Snapdragon devices.
    implementation("com.microsoft.onnxruntime:onnxruntime-android-qnn:1.23.2")
    implementation("androidx.appcompat:appcompat:1.7.0")
    implementation("androidx.documentfile:documentfile:1.0.1")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
    implementation("androidx.lifecycle:lifecycle-runtime-ktx:2.8.7")
}
