package ftrust.trust;

import java.security.cert.CertPathValidator;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertificateFactory;
import java.security.cert.PKIXParameters;
import java.security.cert.PKIXRevocationChecker;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.util.Collections;
import java.util.EnumSet;
import java.util.List;

/**
 * OCSP for one certificate through the JDK's public PKIXRevocationChecker (the responder in the
 * certificate's AIA, the response signed by the issuing CA; no CRL fallback). The request timeout
 * is the JDK's {@code com.sun.security.ocsp.timeout} (seconds; set it low, e.g. 2).
 */
final class Ocsp {
    private Ocsp() {}

    static Verdict check(X509Certificate leaf, X509Certificate issuer) {
        try {
            CertPathValidator validator = CertPathValidator.getInstance("PKIX");
            PKIXRevocationChecker checker = (PKIXRevocationChecker) validator.getRevocationChecker();
            checker.setOptions(EnumSet.of(PKIXRevocationChecker.Option.ONLY_END_ENTITY,
                    PKIXRevocationChecker.Option.NO_FALLBACK));
            PKIXParameters params = new PKIXParameters(Collections.singleton(new TrustAnchor(issuer, null)));
            params.setRevocationEnabled(false);
            params.addCertPathChecker(checker);
            validator.validate(CertificateFactory.getInstance("X.509").generateCertPath(List.of(leaf)), params);
            return Verdict.good("OCSP: good");
        } catch (CertPathValidatorException e) {
            if (e.getReason() == CertPathValidatorException.BasicReason.REVOKED) {
                return Verdict.revoked("OCSP: revoked");
            }
            return Verdict.unknown("OCSP failed: " + e.getMessage());
        } catch (Exception e) {
            return Verdict.unknown("OCSP failed: " + e);
        }
    }
}
