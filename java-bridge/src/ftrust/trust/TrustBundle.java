package ftrust.trust;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertPath;
import java.security.cert.CertPathValidator;
import java.security.cert.CertPathValidatorException;
import java.security.cert.Certificate;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.PKIXCertPathValidatorResult;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The VM's issuing CA(s), read from a PEM bundle and read again whenever the file changes (its
 * modification time or size), so a CA rotation with overlap needs no controller restart. A bundle
 * that cannot be read keeps the previous one in force (and says so); without any, every
 * certificate is refused.
 */
final class TrustBundle {
    private final Path path;
    private volatile Snapshot current;

    static final class Snapshot {
        final List<X509Certificate> cas;
        final Set<TrustAnchor> anchors;
        final long modified;
        final long size;

        Snapshot(List<X509Certificate> cas, long modified, long size) {
            this.cas = cas;
            this.modified = modified;
            this.size = size;
            this.anchors = new HashSet<>();
            for (X509Certificate c : cas) {
                anchors.add(new TrustAnchor(c, null));
            }
        }

        /** PKIX path validation (revocation is checked separately); returns the trusted issuing CA. */
        X509Certificate validate(X509Certificate[] chain) throws CertificateException {
            List<X509Certificate> path = new ArrayList<>(Arrays.asList(chain));
            while (!path.isEmpty() && cas.contains(path.get(path.size() - 1)) && path.size() > 1) {
                path.remove(path.size() - 1);
            }
            try {
                CertPath certPath = CertificateFactory.getInstance("X.509").generateCertPath(path);
                PKIXParameters params = new PKIXParameters(anchors);
                params.setRevocationEnabled(false);
                PKIXCertPathValidatorResult result =
                        (PKIXCertPathValidatorResult) CertPathValidator.getInstance("PKIX").validate(certPath, params);
                return result.getTrustAnchor().getTrustedCert();
            } catch (CertPathValidatorException e) {
                throw new CertificateException("does not chain to a CA of the trust bundle: " + e.getMessage());
            } catch (java.security.GeneralSecurityException e) {
                throw new CertificateException("path validation failed: " + e.getMessage());
            }
        }
    }

    TrustBundle(Path path) {
        this.path = path;
    }

    Path path() {
        return path;
    }

    /** The bundle in force, re-read first if the file changed. */
    Snapshot current() throws CertificateException {
        Snapshot s = current;
        long modified;
        long size;
        try {
            modified = Files.getLastModifiedTime(path).toMillis();
            size = Files.size(path);
        } catch (java.io.IOException e) {
            if (s == null) {
                throw new CertificateException("trust bundle " + path + " cannot be read: " + e);
            }
            return s;
        }
        if (s != null && s.modified == modified && s.size == size) {
            return s;
        }
        synchronized (this) {
            s = current;
            if (s != null && s.modified == modified && s.size == size) {
                return s;
            }
            try {
                List<X509Certificate> cas = read();
                Snapshot next = new Snapshot(cas, modified, size);
                StringBuilder names = new StringBuilder();
                for (X509Certificate c : cas) {
                    names.append(names.length() > 0 ? "; " : "").append(c.getSubjectX500Principal().getName());
                }
                TrustLog.trust((s == null ? "trust bundle " : "trust bundle changed, reloaded ") + path + ": "
                        + cas.size() + " CA(s): " + names);
                current = next;
                return next;
            } catch (Exception e) {
                if (s == null) {
                    throw new CertificateException("trust bundle " + path + " is unusable: " + e.getMessage());
                }
                TrustLog.trust("trust bundle " + path + " changed but is unusable (" + e.getMessage()
                        + "); the previous bundle stays in force");
                return s;
            }
        }
    }

    private List<X509Certificate> read() throws Exception {
        List<X509Certificate> cas = new ArrayList<>();
        try (InputStream in = Files.newInputStream(path)) {
            Collection<? extends Certificate> certs = CertificateFactory.getInstance("X.509").generateCertificates(in);
            for (Certificate c : certs) {
                X509Certificate x = (X509Certificate) c;
                if (x.getBasicConstraints() < 0) {
                    throw new CertificateException("not a CA certificate: " + x.getSubjectX500Principal().getName());
                }
                cas.add(x);
            }
        }
        if (cas.isEmpty()) {
            throw new CertificateException("no certificate in the bundle");
        }
        return cas;
    }
}
