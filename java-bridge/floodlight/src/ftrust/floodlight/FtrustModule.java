package ftrust.floodlight;

import ftrust.trust.FtrustProvider;
import ftrust.trust.RestEnforcer;
import ftrust.trust.TrustConfig;
import ftrust.trust.TrustLog;
import ftrust.trust.TrustRuntime;
import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import net.floodlightcontroller.core.module.FloodlightModuleContext;
import net.floodlightcontroller.core.module.FloodlightModuleException;
import net.floodlightcontroller.core.module.IFloodlightModule;
import net.floodlightcontroller.core.module.IFloodlightService;
import net.floodlightcontroller.restserver.IRestApiService;
import net.floodlightcontroller.restserver.RestApiServer;
import net.floodlightcontroller.restserver.RestletRoutable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The floodlight-trust module: puts the enforcement point ({@link FtrustRestFilter}, the same
 * {@link RestEnforcer} the project's JDK endpoint uses) in front of every REST route, so each
 * request is checked against the VNF certificate's REST grants and its revocation status now.
 *
 * Floodlight 1.2's RestApiServer keeps the routables other modules add (in their startUp) in a
 * protected list and attaches them to its router when it runs; this module depends on the REST
 * service (so its init runs after RestApiServer's) and replaces that list with one that wraps each
 * routable as it is added. Anything unexpected (another REST server, the trust provider not
 * selected) stops Floodlight from starting: an unprotected REST API is not an option.
 *
 * Options (floodlight properties): ftrust.floodlight.FtrustModule.trustConfig=FILE (else the
 * system property ftrust.trust.config).
 */
public final class FtrustModule implements IFloodlightModule {
    private static final Logger trustLog = LoggerFactory.getLogger("ftrust.trust");
    private static final Logger restLog = LoggerFactory.getLogger("ftrust.rest");

    @Override
    public Collection<Class<? extends IFloodlightService>> getModuleServices() {
        return null;
    }

    @Override
    public Map<Class<? extends IFloodlightService>, IFloodlightService> getServiceImpls() {
        return null;
    }

    @Override
    public Collection<Class<? extends IFloodlightService>> getModuleDependencies() {
        List<Class<? extends IFloodlightService>> deps = new ArrayList<>();
        deps.add(IRestApiService.class);
        return deps;
    }

    @Override
    public void init(FloodlightModuleContext context) throws FloodlightModuleException {
        TrustLog.setTrustSink(trustLog::info);
        TrustLog.setRestSink(restLog::info);
        String configured = context.getConfigParams(this).get("trustConfig");
        if (configured != null && !configured.isBlank() && System.getProperty(TrustConfig.PROPERTY) == null) {
            System.setProperty(TrustConfig.PROPERTY, configured.trim());
        }
        String algorithm = System.getProperty("ssl.TrustManagerFactory.algorithm");
        if (!FtrustProvider.ALGORITHM.equals(algorithm)) {
            throw new FloodlightModuleException("ftrust: the REST server's TLS would not use the floodlight-trust "
                    + "trust provider (ssl.TrustManagerFactory.algorithm=" + algorithm + "); start the JVM with "
                    + "-Dssl.TrustManagerFactory.algorithm=" + FtrustProvider.ALGORITHM
                    + " (the command `ftrust floodlight provision` printed)");
        }
        RestEnforcer enforcer;
        try {
            enforcer = new RestEnforcer(TrustRuntime.get());
        } catch (RuntimeException e) {
            throw new FloodlightModuleException("ftrust: the trust provider cannot start: " + e.getMessage());
        }
        IRestApiService rest = context.getServiceImpl(IRestApiService.class);
        if (!(rest instanceof RestApiServer)) {
            throw new FloodlightModuleException("ftrust: the REST service is " + rest.getClass().getName()
                    + ", not Floodlight's RestApiServer: cannot guard its routes");
        }
        try {
            Field field = RestApiServer.class.getDeclaredField("restlets");
            field.setAccessible(true);
            @SuppressWarnings("unchecked")
            List<RestletRoutable> current = (List<RestletRoutable>) field.get(rest);
            GuardedRoutables guarded = new GuardedRoutables(enforcer);
            if (current != null) {
                guarded.addAll(current);
            }
            field.set(rest, guarded);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new FloodlightModuleException("ftrust: cannot put the enforcement point before the REST routes: " + e);
        }
        trustLog.info("ftrust: every REST route is guarded (VNF grants, revocation status per request)");
    }

    @Override
    public void startUp(FloodlightModuleContext context) {
        // nothing: the routables are wrapped as the other modules add them
    }

    /** The REST server's list of routables, wrapping each one in the enforcement filter. */
    static final class GuardedRoutables extends ArrayList<RestletRoutable> {
        private static final long serialVersionUID = 1L;
        private final transient RestEnforcer enforcer;

        GuardedRoutables(RestEnforcer enforcer) {
            this.enforcer = enforcer;
        }

        @Override
        public boolean add(RestletRoutable routable) {
            return super.add(routable instanceof GuardedRoutable ? routable : new GuardedRoutable(routable, enforcer));
        }

        @Override
        public boolean addAll(Collection<? extends RestletRoutable> routables) {
            boolean changed = false;
            for (RestletRoutable r : routables) {
                changed |= add(r);
            }
            return changed;
        }
    }
}
