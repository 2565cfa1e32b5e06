// The inference core: plain Kotlin, no Android classes. Maven's pom.xml beside this file builds and tests the
// same sources on a desktop JVM; inside the app, the Android onnxruntime AAR provides the ai.onnxruntime API.
plugins {
    id("org.jetbrains.kotlin.jvm")
}

kotlin { jvmToolchain(17) }

dependencies {
    implementation("com.google.code.gson:gson:2.13.2")
    compileOnly("com.microsoft.onnxruntime:onnxruntime:1.29.0")
    testImplementation("com.microsoft.onnxruntime:onnxruntime:1.29.0")
    testImplementation("org.junit.jupiter:junit-jupiter:5.14.3")
}

tasks.test {
    useJUnitPlatform()
    systemProperty("golden.dir", rootDir.resolve("../build/golden").path)
    // onnxruntime-qnn's provider library (`make test` passes the venv's): the JVM runs the compiled models in HTP emulation.
    systemProperty("qnn.ep.library", findProperty("qnn.ep.library") ?: "")
}
