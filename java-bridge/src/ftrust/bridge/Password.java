package ftrust.bridge;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;

/** The keystore password: from an environment variable or the first line of stdin, never argv. */
final class Password {
    private Password() {}

    static char[] read(String envName) throws IOException {
        if (envName != null) {
            String value = System.getenv(envName);
            if (value == null) {
                throw new IllegalArgumentException("environment variable " + envName + " is not set");
            }
            return value.toCharArray();
        }
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line = in.readLine();
        if (line == null) {
            throw new IllegalArgumentException("no password on stdin");
        }
        return line.toCharArray();
    }
}
