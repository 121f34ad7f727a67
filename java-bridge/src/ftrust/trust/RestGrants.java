package ftrust.trust;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * The REST grants of a VNF certificate (extension {@link VnfCertificate#REST_GRANTS_OID}) and the
 * rule deciding whether a request is covered. The same rules as floodlight_trust/pki/grants.py:
 * patterns are absolute, segment-wise; "*" is one non-empty segment, "**" (last) zero or more; a
 * trailing "/" is significant. A request path with percent-encoding, a backslash, "//" or a dot
 * segment is refused before any grant is consulted.
 */
public final class RestGrants {
    public static final Set<String> METHODS = Set.of("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS");
    private static final Pattern LITERAL = Pattern.compile("[A-Za-z0-9\\-._~:@!$&'()+,;=]+");

    /** One grant: a method and a path pattern. */
    public static final class Grant {
        public final String method;
        public final String pattern;
        private final String[] segments;

        Grant(String method, String pattern) {
            if (!METHODS.contains(method)) {
                throw new IllegalArgumentException("unknown HTTP method " + method);
            }
            String problem = patternProblem(pattern);
            if (problem != null) {
                throw new IllegalArgumentException("path pattern " + pattern + ": " + problem);
            }
            this.method = method;
            this.pattern = pattern;
            this.segments = pattern.substring(1).split("/", -1);
        }

        boolean allows(String requestMethod, String[] path) {
            if (!method.equals(requestMethod)) {
                return false;
            }
            for (int i = 0; i < segments.length; i++) {
                String seg = segments[i];
                if (seg.equals("**")) {
                    return true;
                }
                if (i >= path.length) {
                    return false;
                }
                if (seg.equals("*")) {
                    if (path[i].isEmpty()) {
                        return false;
                    }
                } else if (!seg.equals(path[i])) {
                    return false;
                }
            }
            return path.length == segments.length;
        }

        @Override
        public String toString() {
            return method + " " + pattern;
        }
    }

    private final List<Grant> grants;

    private RestGrants(List<Grant> grants) {
        this.grants = Collections.unmodifiableList(grants);
    }

    public List<Grant> grants() {
        return grants;
    }

    /** Why {@code pattern} is not a valid path pattern, or null. */
    static String patternProblem(String pattern) {
        if (!pattern.startsWith("/")) {
            return "a path pattern starts with '/'";
        }
        for (String bad : new String[] {"%", "?", "#", "\\"}) {
            if (pattern.contains(bad)) {
                return "a path pattern has no '" + bad + "'";
            }
        }
        String[] segments = pattern.substring(1).split("/", -1);
        for (int i = 0; i < segments.length; i++) {
            String seg = segments[i];
            boolean last = i == segments.length - 1;
            if (seg.isEmpty() && !last) {
                return "empty segment ('//')";
            }
            if (seg.equals(".") || seg.equals("..")) {
                return "dot segment";
            }
            if (seg.equals("**") && !last) {
                return "'**' is only allowed as the last segment";
            }
            if (!seg.isEmpty() && !seg.equals("*") && !seg.equals("**")
                    && (seg.contains("*") || !LITERAL.matcher(seg).matches())) {
                return "segment " + seg + " is not a literal, '*' or '**'";
            }
        }
        return null;
    }

    /** Why a request path is refused before any grant is consulted, or null. */
    public static String pathProblem(String path) {
        if (path == null || !path.startsWith("/")) {
            return "path is not absolute";
        }
        if (path.contains("%")) {
            return "path has percent-encoding";
        }
        if (path.contains("\\")) {
            return "path has a backslash";
        }
        String[] segments = path.substring(1).split("/", -1);
        for (int i = 0; i < segments.length; i++) {
            if (segments[i].isEmpty() && i < segments.length - 1) {
                return "path has an empty segment ('//')";
            }
            String bare = segments[i].split(";", -1)[0]; // "..;x" is ".." to some routers
            if (bare.equals(".") || bare.equals("..")) {
                return "path has a dot segment";
            }
        }
        return null;
    }

    /** The grant allowing {@code method path}, or null (the path must have no {@link #pathProblem}). */
    public Grant allowing(String method, String path) {
        String[] segments = path.substring(1).split("/", -1);
        for (Grant g : grants) {
            if (g.allows(method, segments)) {
                return g;
            }
        }
        return null;
    }

    /** Parse the extension value (the DER inside the extension's OCTET STRING). */
    static RestGrants parse(byte[] der) {
        Der outer = new Der(der, "REST grants extension");
        Der body = outer.read(Der.SEQUENCE, "FtrustRestGrants");
        outer.done("FtrustRestGrants");
        byte[] version = body.read(Der.INTEGER, "version").bytes();
        if (version.length != 1 || version[0] != 1) {
            throw body.fail("version is not 1");
        }
        Der items = body.read(Der.SEQUENCE, "grants");
        body.done("FtrustRestGrants");
        List<Grant> grants = new ArrayList<>();
        while (items.more()) {
            Der one = items.read(Der.SEQUENCE, "RestGrant");
            String method = one.utf8("method");
            String pattern = one.utf8("pathPattern");
            one.done("RestGrant");
            try {
                grants.add(new Grant(method, pattern));
            } catch (IllegalArgumentException e) {
                throw items.fail("grant " + (grants.size() + 1) + ": " + e.getMessage());
            }
        }
        return new RestGrants(grants);
    }

    static RestGrants none() {
        return new RestGrants(new ArrayList<>());
    }
}
