package ftrust.bridge;

import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;

/**
 * Loads a keystore exactly as Floodlight's settings do and prints what Java sees as one JSON
 * object on stdout: {"ok": true, "type", "entries": [...], "trusted": [...]} or
 * {"ok": false, "stage": "load|keymanager|trustmanager|context", "error": "..."} (exit 1).
 *
 * Usage: KeystoreProbe --keystore PATH [--type JKS] [--password-env NAME]  (else password on stdin)
 */
public final class KeystoreProbe {
    private KeystoreProbe() {}

    public static void main(String[] args) throws Exception {
        Options options = Options.parse(args, "--keystore", null, "--type", "JKS", "--password-env", null);
        String path = options.required("--keystore");
        String type = options.get("--type");
        char[] password = Password.read(options.get("--password-env"));
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("keystore", path);
        out.put("requested_type", type);
        out.put("key_manager_algorithm", FloodlightTls.keyManagerAlgorithm());
        out.put("trust_manager_algorithm", FloodlightTls.trustManagerAlgorithm());
        String stage = "load";
        try {
            KeyStore ks = FloodlightTls.load(path, type, password);
            out.put("type", ks.getType());
            List<Object> entries = new ArrayList<>();
            for (String alias : Collections.list(ks.aliases())) {
                Map<String, Object> e = new LinkedHashMap<>();
                e.put("alias", alias);
                boolean key = ks.isKeyEntry(alias);
                e.put("kind", key ? "PrivateKeyEntry" : ks.isCertificateEntry(alias) ? "trustedCertEntry" : "other");
                Certificate c = ks.getCertificate(alias);
                if (c instanceof X509Certificate) {
                    describe((X509Certificate) c, e);
                }
                if (key) {
                    Certificate[] chain = ks.getCertificateChain(alias);
                    e.put("chain_length", chain == null ? 0 : chain.length);
                    try {
                        ks.getKey(alias, password);
                        e.put("key_recoverable", true);
                    } catch (Exception ex) {
                        e.put("key_recoverable", false);
                        e.put("key_error", ex.getMessage());
                    }
                }
                entries.add(e);
            }
            out.put("entries", entries);
            stage = "keymanager";
            FloodlightTls.keyManagers(ks, password);
            stage = "trustmanager";
            TrustManagerFactory tmf = FloodlightTls.trustManagers(ks);
            List<Object> trusted = new ArrayList<>();
            for (TrustManager tm : tmf.getTrustManagers()) {
                if (tm instanceof X509TrustManager) {
                    for (X509Certificate c : ((X509TrustManager) tm).getAcceptedIssuers()) {
                        Map<String, Object> t = new LinkedHashMap<>();
                        describe(c, t);
                        trusted.add(t);
                    }
                }
            }
            out.put("trusted", trusted);
            stage = "context";
            SSLContext.getInstance("TLS").init(FloodlightTls.keyManagers(ks, password).getKeyManagers(),
                    tmf.getTrustManagers(), null);
            out.put("ok", true);
            System.out.println(Json.write(out));
        } catch (Exception ex) {
            out.put("ok", false);
            out.put("stage", stage);
            out.put("error", ex.getClass().getName() + ": " + ex.getMessage());
            System.out.println(Json.write(out));
            System.exit(1);
        }
    }

    private static void describe(X509Certificate c, Map<String, Object> into) throws Exception {
        into.put("subject", c.getSubjectX500Principal().getName());
        into.put("issuer", c.getIssuerX500Principal().getName());
        into.put("not_after", Instant.ofEpochMilli(c.getNotAfter().getTime()).toString());
        byte[] digest = MessageDigest.getInstance("SHA-256").digest(c.getEncoded());
        StringBuilder hex = new StringBuilder();
        for (byte b : digest) {
            hex.append(String.format("%02x", b));
        }
        into.put("sha256", hex.toString());
    }
}
