package ftrust.bridge;

import java.io.FileInputStream;
import java.io.InputStream;
import java.security.KeyStore;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

/**
 * The SSLContext exactly as Floodlight's REST server builds it (Restlet DefaultSslContextFactory
 * with the parameters RestApiServer sets): the same file and password for keystore, key and
 * truststore; key and trust manager algorithms from ssl.KeyManagerFactory.algorithm /
 * ssl.TrustManagerFactory.algorithm, defaulting to SunX509 (which checks no revocation).
 */
final class FloodlightTls {
    private FloodlightTls() {}

    static String keyManagerAlgorithm() {
        return System.getProperty("ssl.KeyManagerFactory.algorithm", "SunX509");
    }

    static String trustManagerAlgorithm() {
        return System.getProperty("ssl.TrustManagerFactory.algorithm", "SunX509");
    }

    static KeyStore load(String path, String type, char[] password) throws Exception {
        KeyStore ks = KeyStore.getInstance(type);
        try (InputStream in = new FileInputStream(path)) {
            ks.load(in, password);
        }
        return ks;
    }

    static KeyManagerFactory keyManagers(KeyStore ks, char[] password) throws Exception {
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(keyManagerAlgorithm());
        kmf.init(ks, password);
        return kmf;
    }

    static TrustManagerFactory trustManagers(KeyStore ks) throws Exception {
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(trustManagerAlgorithm());
        tmf.init(ks);
        return tmf;
    }

    static SSLContext context(String path, String type, char[] password) throws Exception {
        KeyStore ks = load(path, type, password);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(keyManagers(ks, password).getKeyManagers(), trustManagers(ks).getTrustManagers(), null);
        return ctx;
    }
}
