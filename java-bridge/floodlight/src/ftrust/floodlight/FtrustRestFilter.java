package ftrust.floodlight;

import ftrust.trust.RestEnforcer;
import java.security.cert.Certificate;
import java.util.List;
import org.restlet.Context;
import org.restlet.Request;
import org.restlet.Response;
import org.restlet.data.MediaType;
import org.restlet.data.Status;
import org.restlet.routing.Filter;

/**
 * The enforcement point as a Restlet filter: the client certificate chain Restlet exposes
 * (ClientInfo.getCertificates(), or the attribute org.restlet.https.clientCertificates), the method
 * and the path go to {@link RestEnforcer}; a
 * refusal is 403 with a short reason; every call is logged with the VNF identity and its status.
 */
final class FtrustRestFilter extends Filter {
    static final String CERTIFICATES = "org.restlet.https.clientCertificates";
    private static final String DECISION = "ftrust.decision";
    private final RestEnforcer enforcer;

    FtrustRestFilter(Context context, RestEnforcer enforcer) {
        super(context);
        this.enforcer = enforcer;
    }

    @Override
    protected int beforeHandle(Request request, Response response) {
        // Restlet 2.3 (Floodlight 1.2) puts the TLS client chain in ClientInfo; older Restlets used
        // the request attribute org.restlet.https.clientCertificates.
        List<?> chain = request.getClientInfo() != null ? request.getClientInfo().getCertificates() : null;
        if (chain == null || chain.isEmpty()) {
            Object certs = request.getAttributes().get(CERTIFICATES);
            chain = certs instanceof List ? (List<?>) certs : null;
        }
        Certificate[] peer = null;
        if (chain != null) {
            peer = new Certificate[chain.size()];
            for (int i = 0; i < chain.size(); i++) {
                peer[i] = chain.get(i) instanceof Certificate ? (Certificate) chain.get(i) : null;
            }
        }
        String method = request.getMethod().getName();
        String path = request.getResourceRef().getPath();
        RestEnforcer.Decision d = enforcer.decide(peer, method, path);
        if (!d.allowed) {
            RestEnforcer.log(d, method, path, 403);
            response.setStatus(Status.CLIENT_ERROR_FORBIDDEN, "ftrust: " + d.reason);
            response.setEntity("{\"code\": 403, \"description\": " + quote("ftrust: " + d.reason) + "}",
                    MediaType.APPLICATION_JSON);
            return STOP;
        }
        request.getAttributes().put(DECISION, d);
        return CONTINUE;
    }

    @Override
    protected void afterHandle(Request request, Response response) {
        Object d = request.getAttributes().get(DECISION);
        if (d instanceof RestEnforcer.Decision) {
            RestEnforcer.log((RestEnforcer.Decision) d, request.getMethod().getName(),
                    request.getResourceRef().getPath(), response.getStatus().getCode());
        }
    }

    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }
}
