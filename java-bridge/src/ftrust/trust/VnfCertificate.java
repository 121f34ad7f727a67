package ftrust.trust;

import java.math.BigInteger;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;

/**
 * What the controller reads from a VNF's client certificate: the project's VNF certificate policy
 * (without it the certificate is not a VNF's: an admin's, a controller's, anything else of the
 * same CA), the VNF's identity (its SAN URI), and its REST grants. OIDs: floodlight_trust/pki/grants.py.
 */
public final class VnfCertificate {
    public static final String PROJECT_ARC = "2.25.96821760068126637965418207785404257652";
    public static final String VNF_POLICY_OID = PROJECT_ARC + ".1.1";
    public static final String REST_GRANTS_OID = PROJECT_ARC + ".2.1";
    static final String CERTIFICATE_POLICIES_OID = "2.5.29.32";
    static final String VNF_URI_PREFIX = "urn:ftrust:vnf:";
    private static final byte[] VNF_POLICY_DER = Der.encodeOid(VNF_POLICY_OID);

    private VnfCertificate() {}

    /** True when certificatePolicies lists the VNF certificate policy. */
    public static boolean hasVnfPolicy(X509Certificate cert) {
        byte[] ext = cert.getExtensionValue(CERTIFICATE_POLICIES_OID);
        if (ext == null) {
            return false;
        }
        try {
            Der policies = new Der(new Der(ext, "certificatePolicies").read(Der.OCTET_STRING, "extnValue").bytes(),
                    "certificatePolicies").read(Der.SEQUENCE, "certificatePolicies");
            while (policies.more()) {
                Der info = policies.read(Der.SEQUENCE, "PolicyInformation");
                if (Arrays.equals(info.read(Der.OID, "policyIdentifier").bytes(), VNF_POLICY_DER)) {
                    return true;
                }
            }
        } catch (IllegalArgumentException e) {
            return false;
        }
        return false;
    }

    /** The REST grants the certificate carries (none without the extension); malformed: an exception. */
    public static RestGrants grants(X509Certificate cert) {
        byte[] ext = cert.getExtensionValue(REST_GRANTS_OID);
        if (ext == null) {
            return RestGrants.none();
        }
        return RestGrants.parse(new Der(ext, "REST grants extension").read(Der.OCTET_STRING, "extnValue").bytes());
    }

    /** The VNF identity: its urn:ftrust:vnf: SAN URI, else its first SAN URI, else the subject. */
    public static String identity(X509Certificate cert) {
        String firstUri = null;
        try {
            Collection<List<?>> sans = cert.getSubjectAlternativeNames();
            if (sans != null) {
                for (List<?> san : sans) {
                    if (Integer.valueOf(6).equals(san.get(0))) {
                        String uri = String.valueOf(san.get(1));
                        if (uri.startsWith(VNF_URI_PREFIX)) {
                            return uri;
                        }
                        if (firstUri == null) {
                            firstUri = uri;
                        }
                    }
                }
            }
        } catch (CertificateParsingException e) {
            // fall through to the subject
        }
        return firstUri != null ? firstUri : cert.getSubjectX500Principal().getName();
    }

    public static String serialHex(BigInteger serial) {
        return serial.toString(16);
    }
}
