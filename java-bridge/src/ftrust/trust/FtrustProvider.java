package ftrust.trust;

import java.security.Provider;

/**
 * The floodlight-trust JCA provider: TrustManagerFactory "FtrustVNF". Installed through the
 * security properties file given with -Djava.security.properties (a security.provider.N entry
 * naming this class), selected with -Dssl.TrustManagerFactory.algorithm=FtrustVNF, configured by
 * -Dftrust.trust.config=FILE (docs/floodlight.md, `ftrust floodlight provision`).
 */
public final class FtrustProvider extends Provider {
    private static final long serialVersionUID = 1L;
    public static final String NAME = "FtrustTrust";
    public static final String ALGORITHM = "FtrustVNF";

    public FtrustProvider() {
        super(NAME, "1.0", "floodlight-trust: VNF client certificates judged live against the Verification Manager");
        put("TrustManagerFactory." + ALGORITHM, FtrustTrustManagerFactory.class.getName());
    }
}
