package ftrust.bridge;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The command line of the bridge tools: "--name value" pairs, each name one the tool declares
 * with its default (null: no default). Anything else prints one line and exits 2. Passwords are
 * never options: see {@link Password}.
 */
final class Options {
    private final Map<String, String> values;

    private Options(Map<String, String> values) {
        this.values = values;
    }

    static Options parse(String[] args, String... namesAndDefaults) {
        Map<String, String> values = new LinkedHashMap<>();
        for (int i = 0; i + 1 < namesAndDefaults.length; i += 2) {
            values.put(namesAndDefaults[i], namesAndDefaults[i + 1]);
        }
        for (int i = 0; i < args.length; i++) {
            if (!values.containsKey(args[i])) {
                usage("unknown argument " + args[i]);
            }
            if (i + 1 >= args.length) {
                usage(args[i] + " needs a value");
            }
            values.put(args[i], args[++i]);
        }
        return new Options(values);
    }

    /** The value of an option without a default that the tool cannot run without. */
    String required(String name) {
        String value = values.get(name);
        if (value == null) {
            usage(name + " is required");
        }
        return value;
    }

    /** The value given, or the default (may be null). */
    String get(String name) {
        return values.get(name);
    }

    private static void usage(String message) {
        System.err.println(message);
        System.exit(2);
    }
}
