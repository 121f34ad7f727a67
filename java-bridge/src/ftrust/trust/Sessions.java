package ftrust.trust;

import java.math.BigInteger;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.Collection;
import java.util.Collections;
import java.util.Enumeration;
import java.util.Set;
import java.util.WeakHashMap;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSessionContext;

/**
 * The server session caches the provider's trust managers have served (seen on each handshake),
 * so that a revocation can invalidate every cached TLS session of the revoked certificate: a
 * resumption attempt then falls back to a full handshake, which the trust manager refuses. (With
 * stateless session tickets the server keeps no cache: start the JVM with
 * -Djdk.tls.server.enableSessionTicketExtension=false; the enforcement point's per-request check
 * refuses such sessions anyway.)
 */
final class Sessions {
    private final Set<SSLSessionContext> contexts = Collections.newSetFromMap(new WeakHashMap<>());
    // Sessions seen during their handshake, before they were cached (their context is set later).
    private final Set<SSLSession> pending = Collections.newSetFromMap(new WeakHashMap<>());

    void seen(SSLSession session) {
        if (session == null) {
            return;
        }
        SSLSessionContext ctx = session.getSessionContext();
        synchronized (contexts) {
            if (ctx != null) {
                contexts.add(ctx);
            } else {
                pending.add(session);
            }
        }
    }

    /** Invalidate every cached session whose peer certificate has one of {@code serials}. */
    int invalidate(Collection<BigInteger> serials) {
        if (serials.isEmpty()) {
            return 0;
        }
        SSLSessionContext[] known;
        SSLSession[] early;
        synchronized (contexts) {
            early = pending.toArray(new SSLSession[0]);
        }
        int count = 0;
        for (SSLSession s : early) {
            SSLSessionContext ctx = s.getSessionContext();
            synchronized (contexts) {
                if (ctx != null) {
                    contexts.add(ctx);
                    pending.remove(s);
                }
            }
            if (s.isValid() && serials.contains(peerSerial(s))) {
                s.invalidate();
                count++;
            }
        }
        synchronized (contexts) {
            known = contexts.toArray(new SSLSessionContext[0]);
        }
        for (SSLSessionContext ctx : known) {
            for (Enumeration<byte[]> ids = ctx.getIds(); ids.hasMoreElements();) {
                SSLSession s = ctx.getSession(ids.nextElement());
                if (s != null && serials.contains(peerSerial(s))) {
                    s.invalidate();
                    count++;
                }
            }
        }
        return count;
    }

    static BigInteger peerSerial(SSLSession s) {
        try {
            Certificate[] peer = s.getPeerCertificates();
            if (peer.length > 0 && peer[0] instanceof X509Certificate) {
                return ((X509Certificate) peer[0]).getSerialNumber();
            }
        } catch (SSLPeerUnverifiedException e) {
            // no client certificate
        }
        return null;
    }
}
