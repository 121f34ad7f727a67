package ftrust.trust;

import java.math.BigInteger;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * What the provider knows about revocations, and how old that knowledge is.
 *
 * Stream mode: the set of revoked serials from the VM's stream (snapshot, then each revocation as
 * it commits) and the time of the last line heard. While the last line is younger than the
 * staleness bound, a serial not in the set is good. Past the bound (the VM or the network is
 * down), each certificate is checked by OCSP instead; if that fails too, the status is unknown and
 * the certificate is refused (fail closed), with a line in the controller's log.
 * OCSP mode: OCSP for every check, one answer reused for ocsp.cache.seconds.
 */
final class RevocationStatus {
    private final TrustConfig config;
    private final Sessions sessions;
    private final Set<BigInteger> revoked = ConcurrentHashMap.newKeySet();
    private final ConcurrentHashMap<BigInteger, Cached> ocspCache = new ConcurrentHashMap<>();
    private volatile long heardNanos;
    private volatile boolean everHeard;
    private volatile boolean staleLogged;

    private static final class Cached {
        final Verdict verdict;
        final long at;

        Cached(Verdict verdict, long at) {
            this.verdict = verdict;
            this.at = at;
        }
    }

    RevocationStatus(TrustConfig config, Sessions sessions) {
        this.config = config;
        this.sessions = sessions;
    }

    /** A line arrived from the stream: knowledge is fresh now. */
    void heard() {
        heardNanos = System.nanoTime();
        everHeard = true;
        if (staleLogged) {
            staleLogged = false;
            TrustLog.trust("revocation stream from " + config.vmUrl + " is current again");
        }
    }

    /** The stream's snapshot: exactly these serials are revoked now. */
    void snapshot(Collection<BigInteger> serials) {
        List<BigInteger> fresh = new ArrayList<>();
        for (BigInteger s : serials) {
            if (revoked.add(s)) {
                fresh.add(s);
            }
        }
        revoked.retainAll(serials);
        if (everHeard && !fresh.isEmpty()) {
            invalidate(fresh, "snapshot");
        } else if (!fresh.isEmpty()) {
            sessions.invalidate(fresh);
        }
        heard();
    }

    /** One committed revocation from the stream. */
    void revoke(Collection<BigInteger> serials) {
        List<BigInteger> fresh = new ArrayList<>();
        for (BigInteger s : serials) {
            if (revoked.add(s)) {
                fresh.add(s);
            }
        }
        heard();
        if (!fresh.isEmpty()) {
            invalidate(fresh, "stream");
        }
    }

    private void invalidate(List<BigInteger> serials, String how) {
        int n = sessions.invalidate(serials);
        StringBuilder hex = new StringBuilder();
        for (BigInteger s : serials) {
            hex.append(hex.length() > 0 ? "," : "").append(VnfCertificate.serialHex(s));
        }
        TrustLog.trust("revoked serial(s) " + hex + " (" + how + "): invalidated " + n + " cached TLS session(s)");
    }

    long ageMillis() {
        return everHeard ? (System.nanoTime() - heardNanos) / 1_000_000 : Long.MAX_VALUE;
    }

    boolean isRevoked(BigInteger serial) {
        return revoked.contains(serial);
    }

    /** The status of {@code leaf}, issued by {@code issuer}, right now. */
    Verdict check(X509Certificate leaf, X509Certificate issuer) {
        BigInteger serial = leaf.getSerialNumber();
        if (revoked.contains(serial)) {
            return Verdict.revoked("revoked (revocation stream)");
        }
        if (config.mode.equals("stream")) {
            long age = ageMillis();
            if (age <= config.stalenessMillis) {
                return Verdict.good("stream");
            }
            Verdict v = ocsp(leaf, issuer);
            if (v.good()) {
                return Verdict.good("stream stale, OCSP fallback: good");
            }
            if (v.kind == Verdict.Kind.REVOKED) {
                return v;
            }
            String knowledge = everHeard ? "is " + String.format("%.1f", age / 1000.0) + " s old" : "never arrived";
            String why = "FAIL CLOSED: revocation knowledge from " + config.vmUrl + " " + knowledge + " (bound "
                    + config.stalenessMillis / 1000.0 + " s) and the OCSP fallback failed (" + v.reason + ")";
            if (!staleLogged) {
                staleLogged = true;
                TrustLog.trust(why + "; refusing VNF certificates until the stream is current again");
            }
            return Verdict.unknown(why);
        }
        return ocsp(leaf, issuer);
    }

    private Verdict ocsp(X509Certificate leaf, X509Certificate issuer) {
        BigInteger serial = leaf.getSerialNumber();
        long now = System.nanoTime();
        Cached c = ocspCache.get(serial);
        if (c != null && (now - c.at) / 1_000_000 <= config.ocspCacheMillis) {
            return c.verdict;
        }
        Verdict v = Ocsp.check(leaf, issuer);
        ocspCache.put(serial, new Cached(v, System.nanoTime()));
        if (ocspCache.size() > 10_000) {
            ocspCache.clear();
        }
        if (v.kind == Verdict.Kind.REVOKED && revoked.add(serial)) {
            invalidate(List.of(serial), "OCSP");
        }
        return v;
    }
}
