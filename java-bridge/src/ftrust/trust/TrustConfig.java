package ftrust.trust;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Properties;

/**
 * The trust provider's configuration: a properties file named by the system property
 * {@code ftrust.trust.config} (written by `ftrust floodlight provision`; docs/floodlight.md).
 *
 * <pre>
 * trust.bundle=/etc/ftrust/vnf-ca-bundle.pem     # the VM's issuing CA(s), PEM; re-read when it changes
 * revocation.mode=stream                         # stream (+ OCSP fallback) or ocsp
 * vm.url=https://vm.example:8443                 # the Verification Manager (stream mode)
 * vm.certificate=/etc/ftrust/vm-tls.pem          # its TLS certificate, pinned
 * controller.keystore=/etc/ftrust/controller.p12 # the controller's credential for the stream (PKCS#12)
 * controller.keystore.password.file=/etc/ftrust/controller.pass   # 0600, one line
 * staleness.seconds=5                            # fail closed when knowledge is older than this
 * ocsp.cache.seconds=0.5                         # how long one OCSP answer is reused
 * </pre>
 */
public final class TrustConfig {
    public static final String PROPERTY = "ftrust.trust.config";

    final Path source;
    final Path bundle;
    final String mode;
    final URI vmUrl;
    final Path vmCertificate;
    final Path controllerKeystore;
    final Path controllerPasswordFile;
    final long stalenessMillis;
    final long ocspCacheMillis;
    final String streamPath;

    private TrustConfig(Path source, Properties p) {
        this.source = source;
        this.bundle = path(p, "trust.bundle", true);
        this.mode = p.getProperty("revocation.mode", "stream").trim();
        if (!mode.equals("stream") && !mode.equals("ocsp")) {
            throw error("revocation.mode", "is " + mode + "; expected stream or ocsp");
        }
        boolean stream = mode.equals("stream");
        String url = p.getProperty("vm.url");
        if (stream && (url == null || url.isBlank())) {
            throw error("vm.url", "is required with revocation.mode=stream");
        }
        this.vmUrl = url == null || url.isBlank() ? null : URI.create(url.trim().replaceAll("/+$", ""));
        if (vmUrl != null && !"https".equals(vmUrl.getScheme())) {
            throw error("vm.url", "must be an https URL");
        }
        this.vmCertificate = path(p, "vm.certificate", stream);
        this.controllerKeystore = path(p, "controller.keystore", stream);
        this.controllerPasswordFile = path(p, "controller.keystore.password.file", stream);
        this.stalenessMillis = seconds(p, "staleness.seconds", "5");
        this.ocspCacheMillis = seconds(p, "ocsp.cache.seconds", "0.5");
        this.streamPath = p.getProperty("stream.path", "/v1/revocations/stream").trim();
        if (stalenessMillis <= 0) {
            throw error("staleness.seconds", "must be positive");
        }
    }

    private IllegalArgumentException error(String key, String message) {
        return new IllegalArgumentException(source + ": " + key + " " + message);
    }

    private Path path(Properties p, String key, boolean required) {
        String value = p.getProperty(key);
        if (value == null || value.isBlank()) {
            if (required) {
                throw error(key, "is required");
            }
            return null;
        }
        Path path = Paths.get(value.trim());
        if (!path.isAbsolute()) {
            path = source.toAbsolutePath().getParent().resolve(path);
        }
        return path;
    }

    private long seconds(Properties p, String key, String dflt) {
        String value = p.getProperty(key, dflt).trim();
        try {
            double s = Double.parseDouble(value);
            if (s < 0 || Double.isNaN(s) || Double.isInfinite(s)) {
                throw error(key, "must be a non-negative number of seconds, got " + value);
            }
            return Math.round(s * 1000);
        } catch (NumberFormatException e) {
            throw error(key, "is not a number: " + value);
        }
    }

    public static TrustConfig load(Path path) throws IOException {
        Properties p = new Properties();
        try (InputStream in = Files.newInputStream(path)) {
            p.load(new java.io.InputStreamReader(in, StandardCharsets.UTF_8));
        }
        return new TrustConfig(path, p);
    }

    /** The configuration named by {@code -Dftrust.trust.config}; an exception saying what is missing. */
    public static TrustConfig fromSystemProperty() throws IOException {
        String name = System.getProperty(PROPERTY);
        if (name == null || name.isBlank()) {
            throw new IllegalStateException("the ftrust trust provider needs -D" + PROPERTY + "=FILE");
        }
        return load(Paths.get(name));
    }

    /** The stream credential's password; refused (never read) when group or others may read its file. */
    char[] controllerPassword() throws IOException {
        try {
            java.util.Set<java.nio.file.attribute.PosixFilePermission> perms = Files.getPosixFilePermissions(controllerPasswordFile);
            if (perms.contains(java.nio.file.attribute.PosixFilePermission.GROUP_READ)
                    || perms.contains(java.nio.file.attribute.PosixFilePermission.OTHERS_READ)) {
                throw new IOException(controllerPasswordFile + " is readable by group or others (chmod 600 it)");
            }
        } catch (UnsupportedOperationException e) {
            // not a POSIX file system: nothing to check
        }
        String text = new String(Files.readAllBytes(controllerPasswordFile), StandardCharsets.UTF_8);
        int nl = text.indexOf('\n');
        return (nl >= 0 ? text.substring(0, nl) : text).replace("\r", "").toCharArray();
    }

    String describe() {
        return "mode=" + mode + (vmUrl != null ? " vm=" + vmUrl : "") + " bundle=" + bundle
                + " staleness=" + stalenessMillis + "ms";
    }
}
