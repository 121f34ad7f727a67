package ftrust.trust;

import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.util.List;

/**
 * One per JVM: the configuration, the trust bundle, the revocation knowledge (and the stream that
 * feeds it) and the session caches to sweep. Shared by the trust manager (handshakes) and the
 * enforcement point (every request).
 */
public final class TrustRuntime {
    private static TrustRuntime instance;

    final TrustConfig config;
    final TrustBundle bundle;
    final Sessions sessions = new Sessions();
    final RevocationStatus status;
    private final RevocationStream stream;

    private TrustRuntime(TrustConfig config) {
        this.config = config;
        this.bundle = new TrustBundle(config.bundle);
        this.status = new RevocationStatus(config, sessions);
        this.stream = config.mode.equals("stream") ? new RevocationStream(config, status) : null;
    }

    /** The JVM's runtime, from -Dftrust.trust.config (started on first use). */
    public static synchronized TrustRuntime get() {
        if (instance == null) {
            TrustConfig config;
            try {
                config = TrustConfig.fromSystemProperty();
            } catch (java.io.IOException e) {
                throw new IllegalStateException("the ftrust trust provider cannot read its configuration: " + e, e);
            }
            TrustRuntime rt = new TrustRuntime(config);
            TrustLog.trust("trust provider started: " + config.describe());
            if (!"false".equals(System.getProperty("jdk.tls.server.enableSessionTicketExtension"))) {
                TrustLog.trust("stateless TLS session tickets are on: resumed sessions are refused per request "
                        + "only; start the JVM with -Djdk.tls.server.enableSessionTicketExtension=false");
            }
            try {
                rt.bundle.current();
            } catch (CertificateException e) {
                TrustLog.trust(e.getMessage() + ": every client certificate is refused until it is readable");
            }
            if (rt.stream != null) {
                rt.stream.start();
            }
            instance = rt;
        }
        return instance;
    }

    /** Trusted issuing CAs now (re-read if the bundle changed). */
    List<X509Certificate> issuers() {
        try {
            return bundle.current().cas;
        } catch (CertificateException e) {
            return List.of();
        }
    }

    /**
     * Every check a VNF client certificate must pass now: a chain to a CA of the current bundle,
     * the VNF certificate policy, clientAuth, well-formed grants, and a known-good revocation
     * status. Returns null when accepted, else the reason.
     */
    String refusal(X509Certificate[] chain) {
        if (chain == null || chain.length == 0) {
            return "no client certificate";
        }
        X509Certificate leaf = chain[0];
        X509Certificate issuer;
        try {
            issuer = bundle.current().validate(chain);
        } catch (CertificateException e) {
            return e.getMessage();
        }
        if (!VnfCertificate.hasVnfPolicy(leaf)) {
            return "not a VNF certificate (no VNF certificate policy " + VnfCertificate.VNF_POLICY_OID + ")";
        }
        try {
            List<String> eku = leaf.getExtendedKeyUsage();
            if (eku == null || !eku.contains("1.3.6.1.5.5.7.3.2")) {
                return "not a TLS client certificate (no clientAuth extended key usage)";
            }
        } catch (java.security.cert.CertificateParsingException e) {
            return "extended key usage is malformed";
        }
        try {
            VnfCertificate.grants(leaf);
        } catch (IllegalArgumentException e) {
            return e.getMessage();
        }
        Verdict v = status.check(leaf, issuer);
        if (!v.good()) {
            return v.reason;
        }
        return null;
    }
}
