package ftrust.trust;

import java.security.KeyStore;
import javax.net.ssl.ManagerFactoryParameters;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactorySpi;

/**
 * TrustManagerFactory "FtrustVNF": what Floodlight's REST server gets from
 * TrustManagerFactory.getInstance(ssl.TrustManagerFactory.algorithm). The keystore it is
 * initialised with is ignored: the VM's CAs come from the trust bundle of -Dftrust.trust.config.
 */
public final class FtrustTrustManagerFactory extends TrustManagerFactorySpi {
    @Override
    protected void engineInit(KeyStore ks) {
        TrustRuntime.get();
    }

    @Override
    protected void engineInit(ManagerFactoryParameters spec) {
        TrustRuntime.get();
    }

    @Override
    protected TrustManager[] engineGetTrustManagers() {
        return new TrustManager[] {new VnfTrustManager(TrustRuntime.get())};
    }
}
