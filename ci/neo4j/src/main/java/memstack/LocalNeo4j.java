package memstack;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.internal.kernel.api.connectioninfo.ClientConnectionInfo;
import org.neo4j.internal.kernel.api.security.AuthenticationResult;
import org.neo4j.io.ByteUnit;
import org.neo4j.kernel.api.security.AuthManager;
import org.neo4j.kernel.api.security.AuthToken;
import org.neo4j.kernel.internal.GraphDatabaseAPI;

/**
 * A dev/test Neo4j server: an embedded Community DBMS with Bolt on loopback,
 * no HTTP, auth on. Started by ci/neo4j.sh, stopped with SIGTERM (a shutdown
 * hook closes the stores cleanly so the data directory can be reused).
 *
 * Usage: LocalNeo4j [homeDir]  (or env NEO4J_HOME_DIR)
 * Env:   NEO4J_BOLT_HOST (127.0.0.1), NEO4J_BOLT_PORT (7687),
 *        NEO4J_PASSWORD (required, >= 8 chars), NEO4J_PAGECACHE_MB (256),
 *        NEO4J_TX_MEMORY_MB (256, cap for all transactions' heap use).
 *
 * Prints "MEMSTACK_NEO4J_READY ..." once the password is set and Bolt is up.
 */
public final class LocalNeo4j {
    private static final String USER = "neo4j";

    private LocalNeo4j() {}

    private static String env(String name, String dflt) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? dflt : v;
    }

    private static void log(String msg) {
        System.out.println(java.time.Instant.now() + " [memstack] " + msg);
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        Path home = Path.of(args.length > 0 ? args[0] : env("NEO4J_HOME_DIR", "neo4j-data"))
                .toAbsolutePath();
        String host = env("NEO4J_BOLT_HOST", "127.0.0.1");
        int port = Integer.parseInt(env("NEO4J_BOLT_PORT", "7687"));
        String password = System.getenv("NEO4J_PASSWORD");
        long pageCacheMb = Long.parseLong(env("NEO4J_PAGECACHE_MB", "256"));
        long txMemoryMb = Long.parseLong(env("NEO4J_TX_MEMORY_MB", "256"));
        if (password == null || password.length() < 8) {
            System.err.println("NEO4J_PASSWORD must be set (at least 8 characters)");
            System.exit(2);
        }
        Files.createDirectories(home);

        long t0 = System.nanoTime();
        log("starting Neo4j " + org.neo4j.kernel.internal.Version.getNeo4jVersion()
                + " home=" + home + " bolt=" + host + ":" + port);
        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress(host, port))
                .setConfig(BoltConnector.advertised_address, new SocketAddress(host, port))
                .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                .setConfig(HttpConnector.enabled, false)
                .setConfig(HttpsConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(pageCacheMb))
                .setConfig(GraphDatabaseSettings.memory_transaction_global_max_size,
                        ByteUnit.mebiBytes(txMemoryMb))
                // Dev server: grow transaction logs as needed instead of
                // preallocating 256 MiB per database (system + neo4j).
                .setConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                // Dev server: no usage report sent home.
                .setConfig(GraphDatabaseSettings.udc_enabled, false)
                // Bolt waits 5 s + a 5 s netty quiet period on shutdown by
                // default; tests restart the server, so keep it short.
                .setConfig(BoltConnectorInternalSettings.connection_shutdown_wait_time,
                        Duration.ofSeconds(1))
                .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0)
                .build();
        log(String.format("DBMS started in %d ms", (System.nanoTime() - t0) / 1_000_000));

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            log("shutdown requested; stopping Neo4j");
            try {
                dbms.shutdown();
                log("Neo4j stopped cleanly");
            } catch (Throwable t) {
                log("error during shutdown: " + t);
            } finally {
                stopped.countDown();
            }
        }, "memstack-neo4j-shutdown"));

        try {
            long t1 = System.nanoTime();
            GraphDatabaseService db = dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
            long one = (Long) db.executeTransactionally("RETURN 1 AS n", Map.of(),
                    r -> r.next().get("n"));
            log(String.format("self-check took %d ms", (System.nanoTime() - t1) / 1_000_000));
            t1 = System.nanoTime();
            setPassword(dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME), password);
            log(String.format("password step took %d ms", (System.nanoTime() - t1) / 1_000_000));
            if (one != 1L) {
                throw new IllegalStateException("self-check query returned " + one);
            }
        } catch (Throwable t) {
            log("startup failed: " + t);
            t.printStackTrace();
            System.exit(1); // runs the shutdown hook
        }
        log(String.format("MEMSTACK_NEO4J_READY bolt://%s:%d user=%s (started in %d ms)",
                host, port, USER, (System.nanoTime() - t0) / 1_000_000));
        stopped.await();
    }

    /**
     * Makes NEO4J_PASSWORD the password of the built-in user, without the
     * "change required" flag a fresh system database puts on it. A login
     * check first keeps warm starts fast (ALTER USER costs seconds); a changed
     * NEO4J_PASSWORD takes effect on the next start. Embedded transactions
     * run with full rights, so no login is needed for the ALTER itself.
     */
    private static void setPassword(GraphDatabaseService system, String password) {
        AuthenticationResult current = null;
        try {
            AuthManager auth = ((GraphDatabaseAPI) system).getDependencyResolver()
                    .resolveDependency(AuthManager.class);
            current = auth.login(AuthToken.newBasicAuthToken(USER, password),
                    ClientConnectionInfo.EMBEDDED_CONNECTION).subject().getAuthenticationResult();
        } catch (Exception e) {
            log("could not check the current password (" + e + "); setting it");
        }
        if (current == AuthenticationResult.SUCCESS) {
            log("password of user '" + USER + "' already set");
            return;
        }
        try {
            system.executeTransactionally(
                    "ALTER USER " + USER + " SET PASSWORD $pw CHANGE NOT REQUIRED",
                    Map.of("pw", password));
            log("password of user '" + USER + "' set");
        } catch (RuntimeException e) {
            if (!String.valueOf(e.getMessage()).contains("Old password and new password cannot be the same")) {
                throw e;
            }
            system.executeTransactionally(
                    "ALTER USER " + USER + " SET PASSWORD CHANGE NOT REQUIRED");
            log("password of user '" + USER + "' kept; change-required flag cleared");
        }
    }
}
