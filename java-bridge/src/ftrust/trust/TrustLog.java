package ftrust.trust;

import java.time.Instant;
import java.util.function.Consumer;

/**
 * Where the trust provider and the enforcement point write their lines: stderr by default (the
 * JDK endpoint's log); the Floodlight module points both at Floodlight's own logger. Lines never
 * carry a password or key.
 */
public final class TrustLog {
    private static volatile Consumer<String> trust = line -> System.err.println(Instant.now() + " " + line);
    private static volatile Consumer<String> rest = line -> System.err.println(Instant.now() + " " + line);

    private TrustLog() {}

    /** Send the trust provider's lines (refusals, staleness, reloads) to {@code sink}. */
    public static void setTrustSink(Consumer<String> sink) {
        trust = sink;
    }

    /** Send the per-request REST lines (VNF, method, path, status) to {@code sink}. */
    public static void setRestSink(Consumer<String> sink) {
        rest = sink;
    }

    static void trust(String line) {
        trust.accept("ftrust-trust: " + line);
    }

    static void rest(String line) {
        rest.accept("ftrust-rest " + line);
    }
}
