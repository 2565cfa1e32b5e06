package ai.edgefusion.core

import com.google.gson.JsonParser
import java.io.File
import java.text.Normalizer
import java.util.Locale
import java.util.regex.Pattern

/**
 * CLIP byte-level BPE, the same algorithm as the Python host runner (edgefusion_export/runtime/tokenizer.py):
 * NFC, collapse whitespace, lowercase, split on CLIP's pattern, bytes to unicode, merges by rank, BOS/EOS, pad.
 */
class ClipTokenizer(
    private val vocab: Map<String, Int>,
    merges: List<Pair<String, String>>,
    val maxLength: Int = 77,
    padId: Int? = null,
) {
    private val mergeRanks: Map<Pair<String, String>, Int> = merges.withIndex().associate { (rank, pair) -> pair to rank }
    private val byteEncoder: Array<String> = bytesToUnicode()
    private val cache = HashMap<String, List<String>>()
    val bosId: Int = vocab.getValue(BOS)
    val eosId: Int = vocab.getValue(EOS)
    val padId: Int = padId ?: eosId

    /** BOS + ids + EOS, truncated and padded to [maxLength]. */
    fun encode(text: String): IntArray {
        val ids = ArrayList<Int>(maxLength)
        ids.add(bosId)
        ids.addAll(tokenize(text).take(maxLength - 2))
        ids.add(eosId)
        while (ids.size < maxLength) ids.add(padId)
        return ids.toIntArray()
    }

    /**
     * Token ids of [text] without BOS/EOS, truncation or padding. Special-token text in a prompt is that token, and
     * the text between such tokens is tokenized piece by piece, as transformers' CLIPTokenizer does.
     */
    fun tokenize(text: String): List<Int> {
        val ids = ArrayList<Int>()
        var start = 0
        val special = SPECIAL.matcher(text)
        while (special.find()) {
            tokenizePiece(text.substring(start, special.start()), ids)
            ids.add(vocab[special.group()] ?: throw BundleException("the vocabulary has no ${special.group()}; the bundle's tokenizer is damaged"))
            start = special.end()
        }
        tokenizePiece(text.substring(start), ids)
        return ids
    }

    private fun tokenizePiece(text: String, ids: MutableList<Int>) {
        val cleaned = WHITESPACE.matcher(Normalizer.normalize(text, Normalizer.Form.NFC)).replaceAll(" ")
            .trim { it.isWhitespace() }.lowercase(Locale.ROOT)
        val matcher = WORD.matcher(cleaned)
        while (matcher.find()) {
            val encoded = matcher.group().toByteArray(Charsets.UTF_8).joinToString("") { byteEncoder[it.toInt() and 0xFF] }
            for (symbol in bpe(encoded)) ids.add(vocab[symbol] ?: throw BundleException("token '$symbol' is not in the vocabulary; the bundle's tokenizer is damaged"))
        }
    }

    private fun bpe(word: String): List<String> = cache.getOrPut(word) {
        val codePoints = word.codePoints().toArray().map { String(Character.toChars(it)) }
        var symbols = codePoints.dropLast(1) + (codePoints.last() + END_OF_WORD)
        while (symbols.size > 1) {
            val best = symbols.zipWithNext().minByOrNull { mergeRanks[it] ?: Int.MAX_VALUE } ?: break
            if (best !in mergeRanks) break
            val merged = ArrayList<String>(symbols.size)
            var i = 0
            while (i < symbols.size) {
                if (i < symbols.size - 1 && symbols[i] == best.first && symbols[i + 1] == best.second) {
                    merged.add(symbols[i] + symbols[i + 1])
                    i += 2
                } else {
                    merged.add(symbols[i])
                    i += 1
                }
            }
            symbols = merged
        }
        symbols
    }

    companion object {
        const val BOS = "<|startoftext|>"
        const val EOS = "<|endoftext|>"
        private const val END_OF_WORD = "</w>"
        private val WHITESPACE: Pattern = Pattern.compile("\\s+", Pattern.UNICODE_CHARACTER_CLASS)
        private val SPECIAL: Pattern = Pattern.compile(Pattern.quote(BOS) + "|" + Pattern.quote(EOS)) // matched as typed
        private val WORD: Pattern = Pattern.compile(
            "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+",
            Pattern.CASE_INSENSITIVE or Pattern.UNICODE_CASE or Pattern.UNICODE_CHARACTER_CLASS,
        )

        fun fromFiles(vocabFile: File, mergesFile: File, maxLength: Int = 77, padId: Int? = null): ClipTokenizer {
            val vocab = JsonParser.parseString(vocabFile.readText()).asJsonObject.entrySet().associate { it.key to it.value.asInt }
            val merges = mergesFile.readLines().filter { it.isNotEmpty() && !it.startsWith("#version") }.map {
                val parts = it.split(" ")
                parts[0] to parts[1]
            }
            return ClipTokenizer(vocab, merges, maxLength, padId)
        }

        /** GPT-2's reversible map from bytes to printable unicode characters. */
        fun bytesToUnicode(): Array<String> {
            val printable = ((33..126) + (161..172) + (174..255)).toMutableList()
            val codes = printable.toMutableList()
            var extra = 0
            for (byte in 0 until 256) {
                if (byte !in printable) {
                    printable.add(byte)
                    codes.add(256 + extra)
                    extra += 1
                }
            }
            val table = Array(256) { "" }
            printable.zip(codes).forEach { (byte, code) -> table[byte] = String(Character.toChars(code)) }
            return table
        }
    }
}
