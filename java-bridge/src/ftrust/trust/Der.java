package ftrust.trust;

import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.ByteBuffer;
import java.util.Arrays;

/** Just enough DER reading for certificatePolicies and the REST grants extension, bounds checked. */
final class Der {
    static final int SEQUENCE = 0x30;
    static final int INTEGER = 0x02;
    static final int OCTET_STRING = 0x04;
    static final int OID = 0x06;
    static final int UTF8_STRING = 0x0C;

    private final byte[] data;
    private final String what;
    private int pos;
    private final int end;

    Der(byte[] data, String what) {
        this(data, 0, data.length, what);
    }

    private Der(byte[] data, int start, int end, String what) {
        this.data = data;
        this.pos = start;
        this.end = end;
        this.what = what;
    }

    boolean more() {
        return pos < end;
    }

    int peekTag() {
        if (pos >= end) {
            throw fail("truncated");
        }
        return data[pos] & 0xff;
    }

    IllegalArgumentException fail(String message) {
        return new IllegalArgumentException(what + ": " + message + " at offset " + pos);
    }

    /** The next TLV, which must carry {@code tag}, as a reader over its body. */
    Der read(int tag, String name) {
        if (end - pos < 2) {
            throw fail("truncated before " + name);
        }
        int found = data[pos] & 0xff;
        if (found != tag) {
            throw fail(name + ": expected tag 0x" + Integer.toHexString(tag) + ", found 0x" + Integer.toHexString(found));
        }
        int p = pos + 2;
        int first = data[pos + 1] & 0xff;
        int length;
        if (first < 0x80) {
            length = first;
        } else {
            int n = first & 0x7f;
            if (n == 0 || n > 3 || p + n > end) {
                throw fail(name + ": bad length");
            }
            length = 0;
            for (int i = 0; i < n; i++) {
                length = (length << 8) | (data[p + i] & 0xff);
            }
            if (length < 0x80 || data[p] == 0) {
                throw fail(name + ": length not in minimal (DER) form");
            }
            p += n;
        }
        if (length > end - p) {
            throw fail(name + ": length " + length + " runs past the end");
        }
        pos = p + length;
        return new Der(data, p, p + length, what);
    }

    /** Skip the next TLV whatever its tag. */
    void skip(String name) {
        read(peekTag(), name);
    }

    byte[] bytes() {
        return Arrays.copyOfRange(data, pos, end);
    }

    String utf8(String name) {
        Der body = read(UTF8_STRING, name);
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(data, body.pos, body.end - body.pos)).toString();
        } catch (CharacterCodingException e) {
            throw fail(name + " is not UTF-8");
        }
    }

    void done(String name) {
        if (pos != end) {
            throw fail((end - pos) + " trailing bytes after " + name);
        }
    }

    /** The DER content bytes of an OBJECT IDENTIFIER in dotted form (arcs of any size). */
    static byte[] encodeOid(String dotted) {
        String[] parts = dotted.split("\\.");
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        java.math.BigInteger first = new java.math.BigInteger(parts[0]).multiply(java.math.BigInteger.valueOf(40))
                .add(new java.math.BigInteger(parts[1]));
        base128(first, out);
        for (int i = 2; i < parts.length; i++) {
            base128(new java.math.BigInteger(parts[i]), out);
        }
        return out.toByteArray();
    }

    private static void base128(java.math.BigInteger value, java.io.ByteArrayOutputStream out) {
        int groups = Math.max(1, (value.bitLength() + 6) / 7);
        for (int g = groups - 1; g >= 0; g--) {
            int b = value.shiftRight(7 * g).intValue() & 0x7f;
            out.write(g > 0 ? b | 0x80 : b);
        }
    }
}
