package ftrust.trust;

import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.math.BigInteger;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

/**
 * The controller's subscription to the VM's revocation stream (GET /v1/revocations/stream): HTTPS
 * with the controller's client certificate, the VM's TLS certificate pinned. One daemon thread
 * reads NDJSON lines (snapshot, revoked, heartbeat) into {@link RevocationStatus} and reconnects
 * with a short backoff when the connection drops or falls silent.
 */
final class RevocationStream implements Runnable {
    private static final int CONNECT_TIMEOUT_MS = 2000;
    private static final int READ_TIMEOUT_MS = 3000; // three heartbeats of silence: reconnect

    private final TrustConfig config;
    private final RevocationStatus status;
    private volatile boolean stopped;
    private volatile HttpsURLConnection connection;

    RevocationStream(TrustConfig config, RevocationStatus status) {
        this.config = config;
        this.status = status;
    }

    Thread start() {
        Thread t = new Thread(this, "ftrust-revocation-stream");
        t.setDaemon(true);
        t.start();
        return t;
    }

    void stop() {
        stopped = true;
        HttpsURLConnection c = connection;
        if (c != null) {
            c.disconnect();
        }
    }

    private SSLContext context() throws Exception {
        KeyStore client = KeyStore.getInstance("PKCS12");
        char[] password = config.controllerPassword();
        try (InputStream in = Files.newInputStream(config.controllerKeystore)) {
            client.load(in, password);
        }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(client, password);
        java.util.Arrays.fill(password, '\0');
        KeyStore pin = KeyStore.getInstance("PKCS12");
        pin.load(null, null);
        try (InputStream in = Files.newInputStream(config.vmCertificate)) {
            int i = 0;
            for (java.security.cert.Certificate c : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                pin.setCertificateEntry("vm-" + i++, c);
            }
        }
        // The JDK's own PKIX trust manager for the VM's server certificate (never this provider's).
        TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX", "SunJSSE");
        tmf.init(pin);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        return ctx;
    }

    @Override
    public void run() {
        long backoff = 250;
        String lastProblem = null;
        while (!stopped) {
            try {
                SSLContext ctx = context();
                URL url = new URL(config.vmUrl + config.streamPath);
                HttpsURLConnection c = (HttpsURLConnection) url.openConnection();
                c.setSSLSocketFactory(ctx.getSocketFactory());
                c.setConnectTimeout(CONNECT_TIMEOUT_MS);
                c.setReadTimeout(READ_TIMEOUT_MS);
                c.setUseCaches(false);
                c.setRequestProperty("Accept", "application/x-ndjson");
                connection = c;
                int code = c.getResponseCode();
                if (code != 200) {
                    throw new IllegalStateException("the VM answered HTTP " + code + " to the subscription");
                }
                TrustLog.trust("subscribed to the revocation stream of " + config.vmUrl);
                lastProblem = null;
                backoff = 250;
                try (BufferedReader r = new BufferedReader(new InputStreamReader(c.getInputStream(), StandardCharsets.UTF_8))) {
                    String line;
                    while (!stopped && (line = r.readLine()) != null) {
                        if (!line.isBlank()) {
                            handle(line);
                        }
                    }
                }
                throw new IllegalStateException("the VM closed the stream");
            } catch (Exception e) {
                if (stopped) {
                    return;
                }
                String problem = e.getClass().getSimpleName() + ": " + e.getMessage();
                if (!problem.equals(lastProblem)) {
                    TrustLog.trust("revocation stream from " + config.vmUrl + " unavailable (" + problem
                            + "); retrying, OCSP is the fallback past the staleness bound");
                    lastProblem = problem;
                }
                HttpsURLConnection c = connection;
                if (c != null) {
                    c.disconnect();
                }
                try {
                    Thread.sleep(backoff);
                } catch (InterruptedException ie) {
                    return;
                }
                backoff = Math.min(2000, backoff * 2);
            }
        }
    }

    private void handle(String line) {
        Object doc = MiniJson.parse(line);
        if (!(doc instanceof Map)) {
            throw new IllegalArgumentException("revocation stream: a line is not an object");
        }
        Map<?, ?> m = (Map<?, ?>) doc;
        Object type = m.get("type");
        if ("snapshot".equals(type)) {
            status.snapshot(serials(m.get("revoked")));
        } else if ("revoked".equals(type)) {
            status.revoke(serials(m.get("serials")));
        } else if ("heartbeat".equals(type)) {
            status.heard();
        } else {
            throw new IllegalArgumentException("revocation stream: unknown line type " + type);
        }
    }

    private static List<BigInteger> serials(Object value) {
        if (!(value instanceof List)) {
            throw new IllegalArgumentException("revocation stream: serials are not a list");
        }
        List<BigInteger> out = new ArrayList<>();
        for (Object o : (List<?>) value) {
            out.add(new BigInteger(String.valueOf(o), 16));
        }
        return out;
    }
}
