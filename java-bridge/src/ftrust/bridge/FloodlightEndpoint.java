package ftrust.bridge;

import com.sun.net.httpserver.Filter;
import com.sun.net.httpserver.HttpContext;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsExchange;
import com.sun.net.httpserver.HttpsParameters;
import com.sun.net.httpserver.HttpsServer;
import ftrust.trust.RestEnforcer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.cert.Certificate;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLPeerUnverifiedException;

/**
 * A Floodlight-equivalent HTTPS REST endpoint: the SSLContext of Floodlight's RestApiServer (one
 * keystore as keystore and truststore, one password), client authentication required (as
 * httpsNeedClientAuthentication=YES), the JVM's trust manager algorithm and revocation flags
 * applying as they do on Floodlight's JVM. Serves Floodlight's read-only health endpoints.
 *
 * With --enforce true every request first passes the floodlight-trust enforcement point
 * ({@link ftrust.trust.RestEnforcer}, the same class the Floodlight module's Restlet filter uses):
 * revocation status now and the certificate's REST grants, else 403 with a short reason; each call
 * is logged with the VNF identity, method, path and status. It also serves stand-ins for the
 * write endpoints the grants protect (static flow pusher, firewall rules).
 *
 * Usage: FloodlightEndpoint --keystore PATH [--type JKS] [--host 127.0.0.1] [--port 0]
 *        [--need-client-auth true|false] [--enforce false|true] [--password-env NAME]
 *        (else password on stdin)
 * Prints "LISTENING <port>" once bound. "Started" must still be checked by connecting.
 */
public final class FloodlightEndpoint {
    private FloodlightEndpoint() {}

    public static void main(String[] args) throws Exception {
        Options options = Options.parse(args, "--keystore", null, "--type", "JKS", "--host", "127.0.0.1",
                "--port", "0", "--need-client-auth", "true", "--enforce", "false", "--password-env", null);
        String path = options.required("--keystore");
        String type = options.get("--type");
        String host = options.get("--host");
        int port = Integer.parseInt(options.get("--port"));
        boolean needClientAuth = Boolean.parseBoolean(options.get("--need-client-auth"));
        boolean enforce = Boolean.parseBoolean(options.get("--enforce"));
        char[] password = Password.read(options.get("--password-env"));
        final SSLContext ctx = FloodlightTls.context(path, type, password);
        final boolean need = needClientAuth;
        HttpsServer server = HttpsServer.create(new InetSocketAddress(InetAddress.getByName(host), port), 64);
        server.setHttpsConfigurator(new HttpsConfigurator(ctx) {
            @Override
            public void configure(HttpsParameters params) {
                SSLParameters ssl = getSSLContext().getDefaultSSLParameters();
                ssl.setNeedClientAuth(need);
                params.setSSLParameters(ssl);
            }
        });
        final long started = System.currentTimeMillis();
        final Filter enforcement = enforce ? new Enforcement(new RestEnforcer()) : null;
        createContext(server, enforcement, "/wm/staticflowpusher/json", exchange -> {
            drain(exchange);
            Map<String, Object> body = new LinkedHashMap<>();
            body.put("status", exchange.getRequestMethod().equals("DELETE") ? "Entry deleted" : "Entry pushed");
            respond(exchange, 200, body);
        });
        createContext(server, enforcement, "/wm/firewall/rules/json", exchange -> {
            drain(exchange);
            if (exchange.getRequestMethod().equals("GET")) {
                respond(exchange, 200, new ArrayList<>());
                return;
            }
            Map<String, Object> body = new LinkedHashMap<>();
            body.put("status", "Rule added");
            respond(exchange, 200, body);
        });
        createContext(server, enforcement, "/wm/device/", exchange -> respond(exchange, 200, new ArrayList<>()));
        createContext(server, enforcement, "/wm/core/health/json", exchange -> {
            Map<String, Object> body = new LinkedHashMap<>();
            body.put("healthy", true);
            respond(exchange, 200, body);
        });
        createContext(server, enforcement, "/wm/core/memory/json", exchange -> {
            Runtime rt = Runtime.getRuntime();
            Map<String, Object> body = new LinkedHashMap<>();
            body.put("total", rt.totalMemory());
            body.put("free", rt.freeMemory());
            respond(exchange, 200, body);
        });
        createContext(server, enforcement, "/wm/core/controller/switches/json", exchange -> {
            List<Object> switches = new ArrayList<>();
            Map<String, Object> sw = new LinkedHashMap<>();
            sw.put("switchDPID", "00:00:00:00:00:00:00:01");
            sw.put("inetAddress", "/127.0.0.1:6653");
            sw.put("connectedSince", started);
            switches.add(sw);
            respond(exchange, 200, switches);
        });
        createContext(server, enforcement, "/", exchange -> {
            Map<String, Object> body = new LinkedHashMap<>();
            body.put("code", 404);
            body.put("description", "The server has not found anything matching the request URI");
            respond(exchange, 404, body);
        });
        ExecutorService pool = Executors.newFixedThreadPool(8);
        server.setExecutor(pool);
        server.start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.stop(0);
            pool.shutdownNow();
        }));
        System.out.println("LISTENING " + server.getAddress().getPort());
        System.out.flush();
    }

    private static void createContext(HttpsServer server, Filter enforcement, String path, HttpHandler handler) {
        HttpContext context = server.createContext(path, handler);
        if (enforcement != null) {
            context.getFilters().add(enforcement);
        }
    }

    private static void drain(HttpExchange exchange) throws IOException {
        try (InputStream in = exchange.getRequestBody()) {
            in.transferTo(OutputStream.nullOutputStream());
        }
    }

    /** The enforcement point in front of every route: 403 with a reason, or the route; one log line each. */
    private static final class Enforcement extends Filter {
        private final RestEnforcer enforcer;

        Enforcement(RestEnforcer enforcer) {
            this.enforcer = enforcer;
        }

        @Override
        public String description() {
            return "floodlight-trust REST enforcement";
        }

        @Override
        public void doFilter(HttpExchange exchange, Chain chain) throws IOException {
            Certificate[] peer = null;
            if (exchange instanceof HttpsExchange) {
                try {
                    peer = ((HttpsExchange) exchange).getSSLSession().getPeerCertificates();
                } catch (SSLPeerUnverifiedException e) {
                    peer = null;
                }
            }
            String method = exchange.getRequestMethod();
            String path = exchange.getRequestURI().getRawPath();
            RestEnforcer.Decision d = enforcer.decide(peer, method, path);
            if (!d.allowed) {
                drain(exchange);
                Map<String, Object> body = new LinkedHashMap<>();
                body.put("code", 403);
                body.put("description", "ftrust: " + d.reason);
                RestEnforcer.log(d, method, path, 403);
                respond(exchange, 403, body);
                return;
            }
            chain.doFilter(exchange);
            RestEnforcer.log(d, method, path, exchange.getResponseCode());
        }
    }

    private static void respond(HttpExchange exchange, int status, Object body) throws IOException {
        String client = "-";
        if (exchange instanceof HttpsExchange) {
            try {
                client = ((HttpsExchange) exchange).getSSLSession().getPeerPrincipal().getName();
            } catch (SSLPeerUnverifiedException e) {
                client = "(no client certificate)";
            }
        }
        System.err.println(Instant.now() + " " + exchange.getRequestMethod() + " "
                + exchange.getRequestURI().getPath() + " " + status + " client=" + client);
        byte[] bytes = Json.write(body).getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        exchange.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(bytes);
        }
    }
}
