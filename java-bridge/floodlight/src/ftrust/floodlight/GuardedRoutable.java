package ftrust.floodlight;

import ftrust.trust.RestEnforcer;
import net.floodlightcontroller.restserver.RestletRoutable;
import org.restlet.Context;
import org.restlet.Restlet;

/** A module's REST routable with the enforcement filter in front of its restlet. */
final class GuardedRoutable implements RestletRoutable {
    private final RestletRoutable inner;
    private final RestEnforcer enforcer;

    GuardedRoutable(RestletRoutable inner, RestEnforcer enforcer) {
        this.inner = inner;
        this.enforcer = enforcer;
    }

    @Override
    public Restlet getRestlet(Context context) {
        FtrustRestFilter filter = new FtrustRestFilter(context, enforcer);
        filter.setNext(inner.getRestlet(context));
        return filter;
    }

    @Override
    public String basePath() {
        return inner.basePath();
    }
}
