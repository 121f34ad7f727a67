package ftrust.trust;

import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.List;

/**
 * The enforcement point's decision for one REST request, shared by the JDK endpoint and the
 * Floodlight module's Restlet filter: the client certificate must still pass every trust check
 * (current bundle, VNF policy, revocation status now: this covers resumed TLS sessions and open
 * keep-alive connections), the path must be canonical, and one of the certificate's REST grants
 * must allow the method and path. Otherwise 403 with a short reason. Every call is logged.
 */
public final class RestEnforcer {
    private final TrustRuntime runtime;

    /** One decision: allowed or not, why, and who asked. */
    public static final class Decision {
        public final boolean allowed;
        public final String reason;
        public final String identity;
        public final String serial;

        Decision(boolean allowed, String reason, String identity, String serial) {
            this.allowed = allowed;
            this.reason = reason;
            this.identity = identity;
            this.serial = serial;
        }
    }

    public RestEnforcer(TrustRuntime runtime) {
        this.runtime = runtime;
    }

    public RestEnforcer() {
        this(TrustRuntime.get());
    }

    public Decision decide(List<? extends Certificate> chain, String method, String path) {
        return decide(chain == null ? null : chain.toArray(new Certificate[0]), method, path);
    }

    public Decision decide(Certificate[] chain, String method, String path) {
        if (chain == null || chain.length == 0 || !(chain[0] instanceof X509Certificate)) {
            return new Decision(false, "no client certificate", "-", "-");
        }
        X509Certificate[] x509 = new X509Certificate[chain.length];
        for (int i = 0; i < chain.length; i++) {
            if (!(chain[i] instanceof X509Certificate)) {
                return new Decision(false, "not an X.509 certificate chain", "-", "-");
            }
            x509[i] = (X509Certificate) chain[i];
        }
        X509Certificate leaf = x509[0];
        String identity = VnfCertificate.identity(leaf);
        String serial = VnfCertificate.serialHex(leaf.getSerialNumber());
        String refusal = runtime.refusal(x509);
        if (refusal != null) {
            if (runtime.status.isRevoked(leaf.getSerialNumber())) {
                runtime.sessions.invalidate(List.of(leaf.getSerialNumber()));
            }
            return new Decision(false, refusal, identity, serial);
        }
        String problem = RestGrants.pathProblem(path);
        if (problem != null) {
            return new Decision(false, problem, identity, serial);
        }
        RestGrants.Grant grant = VnfCertificate.grants(leaf).allowing(method, path);
        if (grant == null) {
            return new Decision(false, "no grant for " + method + " " + path, identity, serial);
        }
        return new Decision(true, "grant " + grant, identity, serial);
    }

    /** The log line of one call, once its status is known. */
    public static void log(Decision d, String method, String path, int status) {
        TrustLog.rest("vnf=" + d.identity + " serial=" + d.serial + " method=" + method + " path=" + path
                + " status=" + status + " " + (d.allowed ? "allowed" : "refused") + "=\"" + d.reason.replace("\"", "'")
                + "\"");
    }
}
