package ftrust.trust;

import java.net.Socket;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.util.List;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * The trust manager the provider hands to Floodlight's (or the JDK endpoint's) TLS server: a client
 * certificate is accepted only if {@link TrustRuntime#refusal} finds nothing against it. Each
 * refusal is one line in the controller's log. Server certificates are not its business.
 */
final class VnfTrustManager extends X509ExtendedTrustManager {
    private final TrustRuntime runtime;

    VnfTrustManager(TrustRuntime runtime) {
        this.runtime = runtime;
    }

    private void check(X509Certificate[] chain, javax.net.ssl.SSLSession handshake) throws CertificateException {
        String refusal = runtime.refusal(chain);
        if (refusal != null) {
            String who = chain == null || chain.length == 0 ? "(none)"
                    : VnfCertificate.identity(chain[0]) + " serial=" + VnfCertificate.serialHex(chain[0].getSerialNumber());
            TrustLog.trust("refused client certificate " + who + ": " + refusal);
            throw new CertificateException("ftrust: " + refusal);
        }
        runtime.sessions.seen(handshake);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
            throws CertificateException {
        check(chain, engine == null ? null : engine.getHandshakeSession());
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
            throws CertificateException {
        check(chain, socket instanceof SSLSocket ? ((SSLSocket) socket).getHandshakeSession() : null);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        check(chain, null);
    }

    private static CertificateException notServer() {
        return new CertificateException("the ftrust trust manager judges VNF client certificates only");
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
            throws CertificateException {
        throw notServer();
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
            throws CertificateException {
        throw notServer();
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        throw notServer();
    }

    @Override
    public X509Certificate[] getAcceptedIssuers() {
        List<X509Certificate> cas = runtime.issuers();
        return cas.toArray(new X509Certificate[0]);
    }
}
