/*
 * Copyright (C) ngx_tunnel developers
 *
 * Unit tests for the client's options: every command and option, the
 * precedence of flags over the environment over the config file over the
 * defaults, the config file's format and its errors (with line numbers),
 * and the messages a person gets for each mistake.
 *
 * options.c is compiled in here (the unit tests link the core only); its
 * output goes to memory through opt_out and opt_err.  The environment and
 * $HOME are set up in a temporary directory, so the developer's own
 * ~/.config/tunnel/tunnel.conf plays no part.
 */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include "../../client/options.c"
#include "check.h"


static options_t  o;
static char       out[65536];
static char       err[65536];
static char       dir[256];
static char       path[512];


/* runs options_load() on "tunnel ARGS...", output to out[] and err[] */
static int
run_argv(const char **argv)
{
    int      argc, rc;
    char    *ob, *eb;
    size_t   on, en;

    for (argc = 0; argv[argc]; argc++) { /* void */ }

    ob = NULL;
    eb = NULL;
    opt_out = open_memstream(&ob, &on);
    opt_err = open_memstream(&eb, &en);

    rc = options_load(&o, argc, (char **) argv);

    fclose(opt_out);
    fclose(opt_err);
    opt_out = NULL;
    opt_err = NULL;

    snprintf(out, sizeof(out), "%s", ob);
    snprintf(err, sizeof(err), "%s", eb);
    free(ob);
    free(eb);

    return rc;
}

#define RUN(...)  run_argv((const char *[]) { "tunnel", __VA_ARGS__, NULL })


/* a file in the test's directory; returns its path (in path[]) */
static const char *
file(const char *name, const char *text)
{
    FILE  *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);

    f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(1);
    }

    fputs(text, f);
    fclose(f);
    chmod(path, 0600);

    return path;
}


static void
clean_env(void)
{
    unsetenv("TUNNEL_SERVER");
    unsetenv("TUNNEL_TOKEN");
    unsetenv("TUNNEL_CA");
    unsetenv("TUNNEL_CONFIG");
    unsetenv("TUNNEL_LOG_LEVEL");
    unsetenv("TUNNEL_LOG_FORMAT");
    unsetenv("XDG_CONFIG_HOME");
    setenv("HOME", dir, 1);
}


#define CHECK_RC(got, want)                                                  \
    CHECK((got) == (want), "status %d, want %d; stderr: %s", (got), (want), \
          err)

#define CHECK_ERR(text)                                                      \
    CHECK(strstr(err, (text)) != NULL, "stderr lacks \"%s\": %s", (text),    \
          err)

#define CHECK_OUT(text)                                                      \
    CHECK(strstr(out, (text)) != NULL, "stdout lacks \"%s\": %s", (text),    \
          out)


static void
test_help_and_version(void)
{
    CHECK_RC(RUN("--help"), 0);
    CHECK_OUT("Usage:");
    CHECK_OUT("tunnel http PORT");
    CHECK_OUT("--server HOST[:PORT]");
    CHECK_OUT("TUNNEL_TOKEN");
    CHECK(err[0] == '\0', "help wrote to stderr: %s", err);

    CHECK_RC(RUN("-h"), 0);
    CHECK_OUT("Usage:");

    CHECK_RC(RUN("help"), 0);
    CHECK_OUT("tunnel start [NAME...]");

    /* a command's help shows what fits that command only */
    CHECK_RC(RUN("http", "--help"), 0);
    CHECK_OUT("Usage: tunnel http PORT|HOST:PORT|unix:/PATH");
    CHECK_OUT("--host-header");
    CHECK(strstr(out, "--remote-port") == NULL, "http help: %s", out);

    CHECK_RC(RUN("tcp", "-h"), 0);
    CHECK_OUT("--remote-port");
    CHECK(strstr(out, "--host-header") == NULL, "tcp help: %s", out);
    CHECK(strstr(out, "--name") == NULL, "tcp help: %s", out);

    CHECK_RC(RUN("tls", "--help"), 0);
    CHECK_OUT("--hostname FQDN");

    CHECK_RC(RUN("help", "tcp"), 0);
    CHECK_OUT("Usage: tunnel tcp");

    CHECK_RC(RUN("start", "--help"), 0);
    CHECK_OUT("Usage: tunnel start [NAME...]");
    CHECK(strstr(out, "--name") == NULL, "start help: %s", out);

    CHECK_RC(RUN("config", "--help"), 0);
    CHECK_OUT("[tunnel web]");
    CHECK_OUT("kind  = http");

    /* help wins over what else is wrong on the line */
    CHECK_RC(RUN("http", "--help", "--window", "1"), 0);

    CHECK_RC(RUN("--version"), 0);
    CHECK(strcmp(out, "tunnel " TUNNEL_CLIENT_VERSION "\n") == 0,
          "version: %s", out);

    CHECK_RC(RUN("-V"), 0);
    CHECK_OUT(TUNNEL_CLIENT_VERSION);

    CHECK_RC(RUN("version"), 0);
    CHECK_OUT(TUNNEL_CLIENT_VERSION);

    /* a bare "tunnel" shows the help, as a usage error */
    CHECK_RC(RUN(NULL), 2);
    CHECK_ERR("Usage:");
}


static void
test_commands(void)
{
    struct sockaddr_in   *sin;
    struct sockaddr_in6  *sin6;
    struct sockaddr_un   *sun;

    CHECK_RC(RUN("http", "3000", "--server", "edge.example.com"), -1);
    CHECK(o.ntunnels == 1, "%d tunnels", o.ntunnels);
    CHECK(o.tunnels[0].kind == TUNNEL_KIND_HTTP, "kind %u",
          o.tunnels[0].kind);
    CHECK(strcmp(o.tunnels[0].label, "http") == 0, "label %s",
          o.tunnels[0].label);
    CHECK(strcmp(o.tunnels[0].target.text, "localhost:3000") == 0,
          "target %s", o.tunnels[0].target.text);

    /* a bare port is 127.0.0.1, whatever localhost resolves to */
    sin = (struct sockaddr_in *) &o.tunnels[0].target.addr;
    CHECK(sin->sin_family == AF_INET
          && sin->sin_addr.s_addr == htonl(INADDR_LOOPBACK)
          && sin->sin_port == htons(3000)
          && o.tunnels[0].target.addrlen == sizeof(struct sockaddr_in),
          "3000 is not 127.0.0.1:3000");

    CHECK(strcmp(o.server_host, "edge.example.com") == 0
          && strcmp(o.server_port, "4443") == 0, "server %s:%s",
          o.server_host, o.server_port);
    CHECK(o.window == 8 * 1024 * 1024, "window %u", o.window);
    CHECK(o.log_level == LOG_INFO, "level %d", o.log_level);
    CHECK(o.log_format == FORMAT_AUTO, "format %d", o.log_format);
    CHECK(!o.insecure && !o.plain && o.token[0] == '\0'
          && o.cafile[0] == '\0', "defaults");
    CHECK(o.tunnels[0].name[0] == '\0' && o.tunnels[0].remote_port == 0
          && o.tunnels[0].host_header[0] == '\0'
          && o.tunnels[0].proxy_protocol == 0, "tunnel defaults");

    CHECK_RC(RUN("tls", "8443", "--server", "e"), -1);
    CHECK(o.tunnels[0].kind == TUNNEL_KIND_TLS, "tls kind");

    CHECK_RC(RUN("tcp", "22", "--server", "e"), -1);
    CHECK(o.tunnels[0].kind == TUNNEL_KIND_TCP
          && strcmp(o.tunnels[0].label, "tcp") == 0, "tcp kind");

    /* options before the command, and after */
    CHECK_RC(RUN("--server", "e", "tcp", "22"), -1);
    CHECK(strcmp(o.server_host, "e") == 0, "server %s", o.server_host);

    CHECK_RC(RUN("http", "127.0.0.1:8080", "--server", "e"), -1);
    CHECK(strcmp(o.tunnels[0].target.text, "127.0.0.1:8080") == 0,
          "target %s", o.tunnels[0].target.text);
    CHECK(sin->sin_port == htons(8080), "port");

    CHECK_RC(RUN("http", "localhost:8080", "--server", "e"), -1);
    CHECK(strcmp(o.tunnels[0].target.text, "localhost:8080") == 0,
          "target %s", o.tunnels[0].target.text);
    CHECK(o.tunnels[0].target.addrlen > 0, "localhost resolved");

    CHECK_RC(RUN("tcp", "[::1]:9000", "--server", "e"), -1);
    sin6 = (struct sockaddr_in6 *) &o.tunnels[0].target.addr;
    CHECK(sin6->sin6_family == AF_INET6 && sin6->sin6_port == htons(9000)
          && IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr), "[::1]:9000");

    CHECK_RC(RUN("http", "unix:/run/app.sock", "--server", "e"), -1);
    sun = (struct sockaddr_un *) &o.tunnels[0].target.addr;
    CHECK(sun->sun_family == AF_UNIX
          && strcmp(sun->sun_path, "/run/app.sock") == 0
          && o.tunnels[0].target.addrlen
             == offsetof(struct sockaddr_un, sun_path) + 14,
          "unix socket");
    CHECK(strcmp(o.tunnels[0].target.text, "unix:/run/app.sock") == 0,
          "target %s", o.tunnels[0].target.text);

    /* what a browser's address bar gives */
    CHECK_RC(RUN("http", "http://localhost:8080/", "--server", "e"), -1);
    CHECK(strcmp(o.tunnels[0].target.text, "localhost:8080") == 0,
          "target %s", o.tunnels[0].target.text);

    /* ":3000" is a port on this machine too */
    CHECK_RC(RUN("http", ":3000", "--server", "e"), -1);
    CHECK(strcmp(o.tunnels[0].target.text, "localhost:3000") == 0,
          "target %s", o.tunnels[0].target.text);

    /* "--" ends the options */
    CHECK_RC(RUN("--server", "e", "http", "--", "3000"), -1);
}


static void
test_command_errors(void)
{
    CHECK_RC(RUN("htp", "3000"), 2);
    CHECK_ERR("tunnel: unknown command 'htp'; did you mean 'http'?");
    CHECK_ERR("(run 'tunnel --help')");
    CHECK(strchr(err, '\n') == err + strlen(err) - 1,
          "not one line: %s", err);

    CHECK_RC(RUN("frobnicate"), 2);
    CHECK_ERR("unknown command 'frobnicate'");

    CHECK_RC(RUN("3000"), 2);
    CHECK_ERR("'tunnel http 3000'");

    CHECK_RC(RUN("https", "3000"), 2);
    CHECK_ERR("there is no 'tunnel https'");

    CHECK_RC(RUN("http", "--server", "e"), 2);
    CHECK_ERR("say which local service to expose");
    CHECK_ERR("(run 'tunnel http --help')");

    CHECK_RC(RUN("http", "3000", "myapp", "--server", "e"), 2);
    CHECK_ERR("use --name myapp");

    CHECK_RC(RUN("tcp", "22", "30022", "--server", "e"), 2);
    CHECK_ERR("--remote-port");

    CHECK_RC(RUN("config"), 2);
    CHECK_ERR("'tunnel config check'");

    CHECK_RC(RUN("config", "chek"), 2);
    CHECK_RC(RUN("config", "check", "extra"), 2);
    CHECK_ERR("takes no more words");
}


static void
test_targets(void)
{
    CHECK_RC(RUN("http", "70000", "--server", "e"), 2);
    CHECK_ERR("70000 is not a port: give a number from 1 to 65535");

    CHECK_RC(RUN("http", "0", "--server", "e"), 2);
    CHECK_ERR("0 is not a port");

    CHECK_RC(RUN("http", "localhost", "--server", "e"), 2);
    CHECK_ERR("\"localhost\" has no port: give host:port");

    CHECK_RC(RUN("http", "localhost:http", "--server", "e"), 2);
    CHECK_ERR("\"http\" in \"localhost:http\" is not a port");

    CHECK_RC(RUN("http", "localhost:99999", "--server", "e"), 2);
    CHECK_ERR("is not a port");

    CHECK_RC(RUN("tcp", "::1:22", "--server", "e"), 2);
    CHECK_ERR("brackets");

    CHECK_RC(RUN("tcp", "[::1]", "--server", "e"), 2);
    CHECK_ERR("[::1]:3000");

    CHECK_RC(RUN("http", "unix:", "--server", "e"), 2);
    CHECK_ERR("has no path");

    CHECK_RC(RUN("http", "https://localhost:8443", "--server", "e"), 2);
    CHECK_ERR("'tunnel tls localhost:8443'");

    CHECK_RC(RUN("tcp", "http://localhost:80", "--server", "e"), 2);
    CHECK_ERR("this is a tcp tunnel");

    CHECK_RC(RUN("http", "http://localhost:80/app", "--server", "e"), 2);
    CHECK_ERR("without a path");

    /* a name that does not resolve is a failure, not a usage error */
    CHECK_RC(RUN("http", "no-such-host.invalid:80", "--server", "e"), 1);
    CHECK_ERR("cannot find the local service's host "
              "\"no-such-host.invalid\"");
    CHECK_ERR("127.0.0.1:80");
}


static void
test_options(void)
{
    const char  *ca;

    /* --server */
    CHECK_RC(RUN("http", "1", "--server", "edge.example.com:443"), -1);
    CHECK(strcmp(o.server_host, "edge.example.com") == 0
          && strcmp(o.server_port, "443") == 0, "%s:%s", o.server_host,
          o.server_port);

    CHECK_RC(RUN("http", "1", "--server=[2001:db8::1]:5000"), -1);
    CHECK(strcmp(o.server_host, "2001:db8::1") == 0
          && strcmp(o.server_port, "5000") == 0, "%s:%s", o.server_host,
          o.server_port);

    CHECK_RC(RUN("http", "1", "--server", "[::1]"), -1);
    CHECK(strcmp(o.server_host, "::1") == 0
          && strcmp(o.server_port, "4443") == 0, "%s:%s", o.server_host,
          o.server_port);

    CHECK_RC(RUN("http", "1", "--server", "e:0"), 2);
    CHECK_ERR("tunnel: --server: \"0\" is not a port");

    CHECK_RC(RUN("http", "1", "--server", "https://e.example.com"), 2);
    CHECK_ERR("without a scheme");

    CHECK_RC(RUN("http", "1", "--server", "::1"), 2);
    CHECK_ERR("brackets");

    CHECK_RC(RUN("http", "1", "--server", ":4443"), 2);
    CHECK_ERR("has no host name");

    CHECK_RC(RUN("http", "1"), 2);
    CHECK_ERR("no server given: add --server HOST[:PORT], set "
              "TUNNEL_SERVER");

    /* --token */
    CHECK_RC(RUN("http", "1", "--server", "e", "--token", "s3cr3t"), -1);
    CHECK(strcmp(o.token, "s3cr3t") == 0, "token %s", o.token);

    CHECK_RC(RUN("http", "1", "--server", "e", "--token", "a b"), 2);
    CHECK_ERR("copy it again");

    /* --cacert and --ca */
    ca = file("ca.pem", "not really a certificate\n");
    CHECK_RC(RUN("http", "1", "--server", "e", "--cacert", ca), -1);
    CHECK(strcmp(o.cafile, ca) == 0, "cafile %s", o.cafile);

    CHECK_RC(RUN("http", "1", "--server", "e", "--ca", ca), -1);
    CHECK(strcmp(o.cafile, ca) == 0, "cafile %s", o.cafile);

    CHECK_RC(RUN("http", "1", "--server", "e", "--ca", "/no/such.pem"), 1);
    CHECK_ERR("cannot read the CA file /no/such.pem (given by --ca)");

    /* switches */
    CHECK_RC(RUN("http", "1", "--server", "e", "-k"), -1);
    CHECK(o.insecure == 1 && o.plain == 0, "-k");

    CHECK_RC(RUN("http", "1", "--server", "e", "--insecure", "--plain"),
             -1);
    CHECK(o.insecure == 1 && o.plain == 1, "--insecure --plain");

    CHECK_RC(RUN("http", "1", "--server", "e", "--plain=yes"), 2);
    CHECK_ERR("--plain takes no value");

    /* --window */
    CHECK_RC(RUN("http", "1", "--server", "e", "--window", "1m"), -1);
    CHECK(o.window == 1024 * 1024, "window %u", o.window);

    CHECK_RC(RUN("http", "1", "--server", "e", "--window", "262144"), -1);
    CHECK(o.window == 262144, "window %u", o.window);

    CHECK_RC(RUN("http", "1", "--server", "e", "--window", "2047M"), -1);
    CHECK(o.window == 2047u * 1024 * 1024, "window %u", o.window);

    CHECK_RC(RUN("http", "1", "--server", "e", "--window", "100k"), 2);
    CHECK_ERR("\"100k\" is not a window size");
    CHECK_ERR("256k to 2047m");

    CHECK_RC(RUN("http", "1", "--server", "e", "--window", "2g"), 2);
    CHECK_RC(RUN("http", "1", "--server", "e", "--window", "8mb"), 2);
    CHECK_RC(RUN("http", "1", "--server", "e", "--window", "-1"), 2);

    /* --log-level, -v, --log-format */
    CHECK_RC(RUN("http", "1", "--server", "e", "--log-level", "error"), -1);
    CHECK(o.log_level == LOG_ERROR, "level %d", o.log_level);

    CHECK_RC(RUN("http", "1", "--server", "e", "--log-level", "debug"), -1);
    CHECK(o.log_level == LOG_DEBUG, "level %d", o.log_level);

    CHECK_RC(RUN("http", "1", "--server", "e", "-v"), -1);
    CHECK(o.log_level == LOG_DEBUG, "level %d", o.log_level);

    CHECK_RC(RUN("http", "1", "--server", "e", "-kv"), -1);
    CHECK(o.log_level == LOG_DEBUG && o.insecure, "-kv");

    /* the last one wins, as in curl */
    CHECK_RC(RUN("http", "1", "--server", "e", "-v", "--log-level=info"),
             -1);
    CHECK(o.log_level == LOG_INFO, "level %d", o.log_level);

    CHECK_RC(RUN("http", "1", "--server", "e", "--log-level", "loud"), 2);
    CHECK_ERR("\"loud\" is not a log level: use error, info or debug");

    CHECK_RC(RUN("http", "1", "--server", "e", "--log-format", "json"), -1);
    CHECK(o.log_format == FORMAT_JSON, "format %d", o.log_format);

    CHECK_RC(RUN("http", "1", "--server", "e", "--log-format", "text"), -1);
    CHECK(o.log_format == FORMAT_TEXT, "format %d", o.log_format);

    CHECK_RC(RUN("http", "1", "--server", "e", "--log-format", "yaml"), 2);
    CHECK_ERR("use auto");

    /* options in general */
    CHECK_RC(RUN("http", "1", "--sever", "e"), 2);
    CHECK_ERR("unknown option --sever; did you mean --server?");

    CHECK_RC(RUN("http", "1", "--frobnicate"), 2);
    CHECK_ERR("unknown option --frobnicate (run 'tunnel http --help')");

    CHECK_RC(RUN("http", "1", "-x"), 2);
    CHECK_ERR("unknown option -x");

    CHECK_RC(RUN("http", "1", "--server"), 2);
    CHECK_ERR("--server needs a value: --server HOST[:PORT]");

    /* the next option is not a value */
    CHECK_RC(RUN("http", "1", "--token", "--server", "e"), 2);
    CHECK_ERR("--token needs a value");

    CHECK_RC(RUN("http", "1", "--local", "3000"), 2);
    CHECK_ERR("--local is for the config file");
}


static void
test_tunnel_options(void)
{
    /* names */
    CHECK_RC(RUN("http", "1", "--server", "e", "--name", "MyApp"), -1);
    CHECK(strcmp(o.tunnels[0].name, "myapp") == 0, "name %s",
          o.tunnels[0].name);

    CHECK_RC(RUN("http", "1", "--server", "e", "--name", "app.example.com"),
             -1);
    CHECK(strcmp(o.tunnels[0].name, "app.example.com") == 0, "name %s",
          o.tunnels[0].name);

    CHECK_RC(RUN("http", "1", "--server", "e", "--subdomain", "myapp"), -1);
    CHECK(strcmp(o.tunnels[0].name, "myapp") == 0, "name %s",
          o.tunnels[0].name);

    CHECK_RC(RUN("tls", "1", "--server", "e", "--hostname",
                 "App.Example.com."), -1);
    CHECK(strcmp(o.tunnels[0].name, "app.example.com") == 0, "name %s",
          o.tunnels[0].name);

    CHECK_RC(RUN("http", "1", "--server", "e", "--subdomain", "a.b"), 2);
    CHECK_ERR("a subdomain is one label");

    CHECK_RC(RUN("http", "1", "--server", "e", "--hostname", "app"), 2);
    CHECK_ERR("\"app\" is one label: a hostname is a full name");

    CHECK_RC(RUN("http", "1", "--server", "e", "--name", "my_app"), 2);
    CHECK_ERR("--name: \"my_app\" is not a valid name: '_' is not allowed");

    CHECK_RC(RUN("http", "1", "--server", "e", "--name", "-app"), 2);
    CHECK_ERR("neither begins nor ends with '-'");

    CHECK_RC(RUN("http", "1", "--server", "e", "--name", "a..b"), 2);
    CHECK_ERR("empty label");

    CHECK_RC(RUN("http", "1", "--server", "e", "--name",
                 "a234567890123456789012345678901234567890123456789012345678"
                 "901234"), 2);
    CHECK_ERR("at most 63 characters");

    CHECK_RC(RUN("http", "1", "--server", "e", "--name", ""), 2);
    CHECK_ERR("the name is empty");

    CHECK_RC(RUN("tcp", "22", "--server", "e", "--name", "x"), 2);
    CHECK_ERR("a tcp tunnel has no name");

    /* --remote-port */
    CHECK_RC(RUN("tcp", "22", "--server", "e", "--remote-port", "30022"),
             -1);
    CHECK(o.tunnels[0].remote_port == 30022, "port %u",
          o.tunnels[0].remote_port);

    CHECK_RC(RUN("tcp", "22", "--server", "e", "--remote-port", "x"), 2);
    CHECK_ERR("--remote-port: \"x\" is not a port");

    CHECK_RC(RUN("http", "1", "--server", "e", "--remote-port", "30022"), 2);
    CHECK_ERR("only a tcp tunnel gets a port of its own; an http tunnel");

    /* --host-header */
    CHECK_RC(RUN("http", "1", "--server", "e", "--host-header", "a.test"),
             -1);
    CHECK(strcmp(o.tunnels[0].host_header, "a.test") == 0, "host %s",
          o.tunnels[0].host_header);

    CHECK_RC(RUN("http", "localhost:8080", "--server", "e", "--host-header",
                 "rewrite"), -1);
    CHECK(strcmp(o.tunnels[0].host_header, "localhost:8080") == 0,
          "host %s", o.tunnels[0].host_header);

    CHECK_RC(RUN("http", "3000", "--server", "e", "--host-header",
                 "rewrite"), -1);
    CHECK(strcmp(o.tunnels[0].host_header, "localhost:3000") == 0,
          "host %s", o.tunnels[0].host_header);

    CHECK_RC(RUN("tls", "1", "--server", "e", "--host-header", "x"), 2);
    CHECK_ERR("only be changed in an http tunnel");

    CHECK_RC(RUN("http", "1", "--server", "e", "--host-header", "a b"), 2);
    CHECK_ERR("cannot be a Host header");

    /* --proxy-protocol */
    CHECK_RC(RUN("tcp", "1", "--server", "e", "--proxy-protocol", "1"), -1);
    CHECK(o.tunnels[0].proxy_protocol == 1, "pp %d",
          o.tunnels[0].proxy_protocol);

    CHECK_RC(RUN("tls", "1", "--server", "e", "--proxy-protocol", "v2"), -1);
    CHECK(o.tunnels[0].proxy_protocol == 2, "pp %d",
          o.tunnels[0].proxy_protocol);

    CHECK_RC(RUN("http", "1", "--server", "e", "--proxy-protocol", "3"), 2);
    CHECK_ERR("\"3\" is not a PROXY protocol version: use 1 or 2");
}


static void
test_precedence(void)
{
    const char  *conf;
    char         conf_path[512];

    conf = file("p.conf",
                "server = file.example.com:1111\n"
                "token = from-file\n"
                "log-level = error\n"
                "log-format = text\n"
                "window = 1m\n");
    snprintf(conf_path, sizeof(conf_path), "%s", conf);

    /* the file over the defaults */
    CHECK_RC(RUN("http", "1", "--config", conf_path), -1);
    CHECK(strcmp(o.server_host, "file.example.com") == 0
          && strcmp(o.server_port, "1111") == 0, "server %s",
          o.server_host);
    CHECK(strcmp(o.token, "from-file") == 0, "token %s", o.token);
    CHECK(o.log_level == LOG_ERROR && o.log_format == FORMAT_TEXT
          && o.window == 1024 * 1024, "file settings");
    CHECK(strcmp(o.config_file, conf_path) == 0, "config_file %s",
          o.config_file);

    /* the environment over the file */
    setenv("TUNNEL_SERVER", "env.example.com", 1);
    setenv("TUNNEL_TOKEN", "from-env", 1);
    setenv("TUNNEL_LOG_LEVEL", "debug", 1);
    setenv("TUNNEL_LOG_FORMAT", "json", 1);

    CHECK_RC(RUN("http", "1", "--config", conf_path), -1);
    CHECK(strcmp(o.server_host, "env.example.com") == 0
          && strcmp(o.server_port, "4443") == 0, "server %s:%s",
          o.server_host, o.server_port);
    CHECK(strcmp(o.token, "from-env") == 0, "token %s", o.token);
    CHECK(o.log_level == LOG_DEBUG && o.log_format == FORMAT_JSON,
          "env log settings");
    CHECK(o.window == 1024 * 1024, "the file's window stays");

    /* flags over the environment */
    CHECK_RC(RUN("http", "1", "--config", conf_path, "--server",
                 "flag.example.com:2222", "--token", "from-flag",
                 "--log-level", "info", "--log-format", "auto"), -1);
    CHECK(strcmp(o.server_host, "flag.example.com") == 0
          && strcmp(o.server_port, "2222") == 0, "server %s",
          o.server_host);
    CHECK(strcmp(o.token, "from-flag") == 0, "token %s", o.token);
    CHECK(o.log_level == LOG_INFO && o.log_format == FORMAT_AUTO,
          "flag log settings");

    /* an empty variable is as good as none */
    setenv("TUNNEL_SERVER", "", 1);
    CHECK_RC(RUN("http", "1", "--config", conf_path), -1);
    CHECK(strcmp(o.server_host, "file.example.com") == 0, "server %s",
          o.server_host);

    /* a bad variable is a usage error that names it */
    setenv("TUNNEL_LOG_LEVEL", "loud", 1);
    CHECK_RC(RUN("http", "1", "--config", conf_path), 2);
    CHECK_ERR("the environment variable TUNNEL_LOG_LEVEL: \"loud\" is not "
              "a log level");
    CHECK_ERR("fix or unset it");

    clean_env();

    /* TUNNEL_CA: flag over environment over file */
    file("ca1.pem", "x\n");
    file("ca2.pem", "x\n");
    file("ca3.pem", "x\n");
    snprintf(path, sizeof(path), "%s/ca2.pem", dir);
    setenv("TUNNEL_CA", path, 1);

    conf = file("ca.conf", "server = e\ncacert = ca1.pem\n");
    snprintf(conf_path, sizeof(conf_path), "%s", conf);

    CHECK_RC(RUN("http", "1", "--config", conf_path), -1);
    CHECK(strstr(o.cafile, "ca2.pem") != NULL, "cafile %s", o.cafile);

    snprintf(path, sizeof(path), "%s/ca3.pem", dir);
    CHECK_RC(RUN("http", "1", "--config", conf_path, "--cacert", path), -1);
    CHECK(strstr(o.cafile, "ca3.pem") != NULL, "cafile %s", o.cafile);

    clean_env();

    /* TUNNEL_CONFIG, and --config over it */
    file("env.conf", "server = env-config.example.com\n");
    setenv("TUNNEL_CONFIG", path, 1);

    CHECK_RC(RUN("http", "1"), -1);
    CHECK(strcmp(o.server_host, "env-config.example.com") == 0,
          "server %s", o.server_host);

    CHECK_RC(RUN("http", "1", "--config", conf_path), -1);
    CHECK(strcmp(o.server_host, "e") == 0, "server %s", o.server_host);

    setenv("TUNNEL_CONFIG", "/no/such/tunnel.conf", 1);
    CHECK_RC(RUN("http", "1", "--server", "e"), 1);
    CHECK_ERR("cannot read the config file /no/such/tunnel.conf (given by "
              "TUNNEL_CONFIG): No such file or directory");

    clean_env();

    /* the default place: $XDG_CONFIG_HOME, else ~/.config */
    snprintf(path, sizeof(path), "%s/.config", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/.config/tunnel", dir);
    mkdir(path, 0700);
    file(".config/tunnel/tunnel.conf", "server = home.example.com\n");

    CHECK_RC(RUN("http", "1"), -1);
    CHECK(strcmp(o.server_host, "home.example.com") == 0, "server %s",
          o.server_host);

    snprintf(path, sizeof(path), "%s/xdg", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/xdg/tunnel", dir);
    mkdir(path, 0700);
    file("xdg/tunnel/tunnel.conf", "server = xdg.example.com\n");
    snprintf(path, sizeof(path), "%s/xdg", dir);
    setenv("XDG_CONFIG_HOME", path, 1);

    CHECK_RC(RUN("http", "1"), -1);
    CHECK(strcmp(o.server_host, "xdg.example.com") == 0, "server %s",
          o.server_host);

    /* a relative XDG_CONFIG_HOME is ignored, as the spec says */
    setenv("XDG_CONFIG_HOME", "xdg", 1);
    CHECK_RC(RUN("http", "1"), -1);
    CHECK(strcmp(o.server_host, "home.example.com") == 0, "server %s",
          o.server_host);

    /* no default file is fine */
    snprintf(path, sizeof(path), "%s/empty", dir);
    mkdir(path, 0700);
    setenv("XDG_CONFIG_HOME", path, 1);
    CHECK_RC(RUN("http", "1", "--server", "e"), -1);
    CHECK(err[0] == '\0', "stderr: %s", err);

    /* a missing explicit file is not */
    CHECK_RC(RUN("http", "1", "--server", "e", "--config", "/no/such.conf"),
             1);
    CHECK_ERR("cannot read the config file /no/such.conf (given by "
              "--config)");

    CHECK_RC(RUN("http", "1", "--server", "e", "--config", dir), 1);
    CHECK_ERR("is a directory");

    clean_env();
}


static const char  *good_conf =
    "# a test config\n"
    "server = edge.example.com:4443\n"
    "token  = \"abc#def\"   # quoted: '#' stays\n"
    "insecure = yes\n"
    "log_level = debug\n"
    "\n"
    "[tunnel web]\n"
    "kind = http\n"
    "local = 3000   # comment\n"
    "name = MyApp\n"
    "host-header = rewrite\n"
    "\n"
    "  [ tunnel db ]  \n"
    "kind = tcp\n"
    "local = 127.0.0.1:5432\n"
    "remote-port = 30001\n"
    "proxy-protocol = 2\n"
    "\n"
    "[tunnel sock]\r\n"
    "kind = tls\r\n"
    "local = unix:/run/x.sock\r\n"
    "hostname = app.example.com\r\n"
    "proxy_protocol = off\r\n";


static void
test_config_file(void)
{
    char  conf[512];

    snprintf(conf, sizeof(conf), "%s", file("good.conf", good_conf));

    CHECK_RC(RUN("start", "--config", conf), -1);
    CHECK(o.ntunnels == 3, "%d tunnels", o.ntunnels);
    CHECK(strcmp(o.token, "abc#def") == 0, "token %s", o.token);
    CHECK(o.insecure == 1 && o.log_level == LOG_DEBUG, "globals");

    CHECK(strcmp(o.tunnels[0].label, "web") == 0
          && o.tunnels[0].kind == TUNNEL_KIND_HTTP
          && strcmp(o.tunnels[0].target.text, "localhost:3000") == 0
          && strcmp(o.tunnels[0].name, "myapp") == 0
          && strcmp(o.tunnels[0].host_header, "localhost:3000") == 0,
          "web: %s %u %s %s %s", o.tunnels[0].label, o.tunnels[0].kind,
          o.tunnels[0].target.text, o.tunnels[0].name,
          o.tunnels[0].host_header);

    CHECK(strcmp(o.tunnels[1].label, "db") == 0
          && o.tunnels[1].kind == TUNNEL_KIND_TCP
          && o.tunnels[1].remote_port == 30001
          && o.tunnels[1].proxy_protocol == 2
          && o.tunnels[1].target.addrlen == sizeof(struct sockaddr_in),
          "db");

    CHECK(strcmp(o.tunnels[2].label, "sock") == 0
          && o.tunnels[2].kind == TUNNEL_KIND_TLS
          && o.tunnels[2].target.addr.ss_family == AF_UNIX
          && strcmp(o.tunnels[2].name, "app.example.com") == 0
          && o.tunnels[2].proxy_protocol == 0, "sock");

    /* the one-shot commands take the file's settings, not its tunnels */
    CHECK_RC(RUN("tcp", "22", "--config", conf), -1);
    CHECK(o.ntunnels == 1 && o.tunnels[0].kind == TUNNEL_KIND_TCP
          && strcmp(o.server_host, "edge.example.com") == 0, "tcp 22");

    /* kind after local: local is checked once the kind is known */
    snprintf(conf, sizeof(conf), "%s",
             file("order.conf", "server = e\n[tunnel a]\n"
                  "local = http://localhost:80\nkind = tcp\n"));
    CHECK_RC(RUN("start", "--config", conf), 2);
    CHECK_ERR("order.conf:3: local: \"http://localhost:80\" is an http "
              "address, and this is a tcp tunnel");

    /* a file with no tunnels, for start */
    snprintf(conf, sizeof(conf), "%s",
             file("none.conf", "server = e\n"));
    CHECK_RC(RUN("start", "--config", conf), 2);
    CHECK_ERR("has no tunnels: add a [tunnel NAME] section");

    /* no file at all, for start */
    snprintf(path, sizeof(path), "%s/empty", dir);
    setenv("XDG_CONFIG_HOME", path, 1);
    CHECK_RC(RUN("start", "--server", "e"), 2);
    CHECK_ERR("'tunnel start' runs the tunnels of the config file, and "
              "there is none");
    clean_env();

    /* the token in a file others can read: a warning, not an error */
    snprintf(conf, sizeof(conf), "%s", file("open.conf", "server = e\n"
                                            "token = t\n"));
    chmod(conf, 0644);
    CHECK_RC(RUN("http", "1", "--config", conf), -1);
    CHECK_ERR("warning: ");
    CHECK_ERR("chmod 600");

    chmod(conf, 0600);
    CHECK_RC(RUN("http", "1", "--config", conf), -1);
    CHECK(err[0] == '\0', "stderr: %s", err);
}


/* each error of a file, on its line; "start" says 2, "config check" 1 */
static void
check_conf_error(const char *text, const char *want)
{
    char  conf[512];

    snprintf(conf, sizeof(conf), "%s", file("err.conf", text));

    CHECK_RC(RUN("start", "--config", conf), 2);
    CHECK(strstr(err, want) != NULL, "for:\n%swant \"%s\", got: %s", text,
          want, err);

    CHECK_RC(RUN("config", "check", "--config", conf), 1);
    CHECK(strstr(err, want) != NULL, "config check, for:\n%swant \"%s\", "
          "got: %s", text, want, err);
}


static void
test_config_errors(void)
{
    char  big[8192];
    int   i, n;

    check_conf_error("server = e\nnmae = x\n",
                     "err.conf:2: unknown setting \"nmae\"; did you mean "
                     "\"name\"?");
    check_conf_error("server = e\nfrobnicate = x\n",
                     "err.conf:2: unknown setting \"frobnicate\"; before "
                     "the first [tunnel NAME] the settings are:");
    check_conf_error("server = e\n[tunnel a]\nkind = http\nlocal = 1\n"
                     "colour = red\n",
                     "err.conf:5: unknown setting \"colour\" in [tunnel a]; "
                     "a tunnel takes: kind, local,");
    check_conf_error("server = e\nserver = f\n",
                     "err.conf:2: \"server\" is set twice, first on ");
    check_conf_error("server = e\nlocal = 3000\n",
                     "err.conf:2: \"local\" is a setting of one tunnel");
    check_conf_error("server = e\n[tunnel a]\nkind = http\nlocal = 1\n"
                     "token = x\n",
                     "err.conf:5: \"token\" is for the whole client, not "
                     "for [tunnel a]");
    check_conf_error("server = e\n[tunnel a]\nkind = http\nlocal = 1\n"
                     "kind = tcp\n",
                     "err.conf:5: \"kind\" is set twice in [tunnel a], "
                     "first on line 3");
    check_conf_error("server = e\n[tunnel a]\nkind = http\nlocal = 1\n"
                     "name = x\nhostname = x.example.com\n",
                     "err.conf:6: [tunnel a] already has a public name");
    check_conf_error("server = e\n\n[tunnel a]\nlocal = 1\n",
                     "err.conf:3: [tunnel a] has no kind: add \"kind = "
                     "http\"");
    check_conf_error("server = e\n[tunnel a]\nkind = http\n",
                     "err.conf:2: [tunnel a] has no local service: add "
                     "\"local = 3000\"");
    check_conf_error("server = e\n[tunnel a]\nkind = htp\nlocal = 1\n",
                     "err.conf:3: kind: \"htp\" is not a tunnel kind: use "
                     "http, tls or tcp");
    check_conf_error("server = e\n[tunnel a]\nkind = http\nlocal = 99999\n",
                     "err.conf:4: local: 99999 is not a port");
    check_conf_error("server = e\n[tunnel a]\nkind = tcp\nlocal = 1\n"
                     "remote-port = 0\n",
                     "err.conf:5: remote-port: \"0\" is not a port");
    check_conf_error("server = e\n[tunnel a]\nkind = http\nlocal = 1\n"
                     "name = Bad_Name\n",
                     "err.conf:5: name: \"Bad_Name\" is not a valid name");
    check_conf_error("server = e\n[tunnel a]\nkind = tcp\nlocal = 1\n"
                     "name = x\n",
                     "err.conf:5: a tcp tunnel has no name");
    check_conf_error("server = e\n[tunnel a]\nkind = http\nlocal = 1\n"
                     "remote-port = 30000\n",
                     "err.conf:5: only a tcp tunnel gets a port");
    check_conf_error("server = e\n[tunnel a]\nkind = http\nlocal = 1\n"
                     "[tunnel a]\nkind = http\nlocal = 2\n",
                     "err.conf:5: [tunnel a] again: the first is on line 2");
    check_conf_error("server = e\n[web]\n",
                     "err.conf:2: unknown section [web]; a tunnel section "
                     "is [tunnel NAME]");
    check_conf_error("server = e\n[tunnel]\n",
                     "err.conf:2: unknown section [tunnel]");
    check_conf_error("server = e\n[tunnel a b]\n",
                     "err.conf:2: the tunnel name \"a b\" has ' ' in it");
    check_conf_error("server = e\n[tunnel a\n",
                     "err.conf:2: a section line ends with ']'");
    check_conf_error("server = e\n[tunnel a] x\n",
                     "err.conf:2: text after ']'");
    check_conf_error("server = e\ntoken = \"abc\n",
                     "err.conf:2: the quote opened here is not closed");
    check_conf_error("server = e\ntoken = \"abc\" def\n",
                     "err.conf:2: text after the closing quote");
    check_conf_error("server = e\njust some words\n",
                     "err.conf:2: expected KEY = VALUE");
    check_conf_error("server = e\ntoken =\n",
                     "err.conf:2: no value after '='");
    check_conf_error("server = e\n= x\n",
                     "err.conf:2: a line starts with '='");
    check_conf_error("server = e\ninsecure = maybe\n",
                     "err.conf:2: insecure: \"maybe\" is neither yes nor "
                     "no");
    check_conf_error("server = e\nwindow = 1k\n",
                     "err.conf:2: window: \"1k\" is not a window size");
    check_conf_error("server = e\nconfig = other.conf\n",
                     "err.conf:2: a config file cannot name another one");
    check_conf_error("server = e:x\n",
                     "err.conf:1: server: \"x\" is not a port");

    /* every error, not only the first */
    check_conf_error("server = e\nnmae = x\n[tunnel a]\nkind = htp\n"
                     "local = 1\n",
                     "err.conf:4:");
    CHECK_ERR("err.conf:2:");

    /* more tunnels than a client runs */
    for (i = 0, n = 0; i <= MAX_TUNNELS; i++) {
        n += snprintf(big + n, sizeof(big) - n,
                      "[tunnel t%d]\nkind = tcp\nlocal = %d\n", i, i + 1);
    }

    check_conf_error(big, "has 33 tunnels; one client runs at most 32");
}


static void
test_start_selection(void)
{
    char  conf[512];

    snprintf(conf, sizeof(conf), "%s", file("sel.conf", good_conf));

    CHECK_RC(RUN("start", "db", "--config", conf), -1);
    CHECK(o.ntunnels == 1 && strcmp(o.tunnels[0].label, "db") == 0
          && o.tunnels[0].remote_port == 30001, "start db");

    /* the file's order, each once */
    CHECK_RC(RUN("start", "sock", "web", "sock", "--config", conf), -1);
    CHECK(o.ntunnels == 2 && strcmp(o.tunnels[0].label, "web") == 0
          && strcmp(o.tunnels[1].label, "sock") == 0
          && strcmp(o.tunnels[0].name, "myapp") == 0, "start sock web");

    CHECK_RC(RUN("start", "nope", "--config", conf), 2);
    CHECK_ERR("no tunnel \"nope\" in ");
    CHECK_ERR("it has: web, db, sock (run 'tunnel start --help')");

    /* a tunnel's flags belong to its section in the file */
    CHECK_RC(RUN("start", "--config", conf, "--name", "x"), 2);
    CHECK_ERR("--name is for the one tunnel of 'tunnel http|tls|tcp'");

    /* global flags apply to the file's tunnels */
    CHECK_RC(RUN("start", "--config", conf, "--server", "other:1", "--log-"
                 "format", "json"), -1);
    CHECK(strcmp(o.server_host, "other") == 0 && o.ntunnels == 3
          && o.log_format == FORMAT_JSON, "start with flags");

    /* an unresolvable name in a tunnel not started does not matter */
    snprintf(conf, sizeof(conf), "%s",
             file("dns.conf", "server = e\n[tunnel ok]\nkind = tcp\n"
                  "local = 22\n[tunnel far]\nkind = tcp\n"
                  "local = no-such-host.invalid:22\n"));
    CHECK_RC(RUN("start", "ok", "--config", conf), -1);
    CHECK_RC(RUN("start", "--config", conf), 1);
    CHECK_ERR("dns.conf:7: cannot find the local service's host");
}


static void
test_config_check(void)
{
    char  conf[512];

    snprintf(conf, sizeof(conf), "%s", file("chk.conf", good_conf));

    setenv("TUNNEL_TOKEN", "env-token", 1);
    CHECK_RC(RUN("config", "check", "--config", conf, "-v"), 0);
    CHECK_OUT("config file   ");
    CHECK_OUT("server        edge.example.com:4443, TLS, certificate NOT "
              "verified  [");
    CHECK_OUT("chk.conf:2]");
    CHECK_OUT("token         set (9 characters)  [TUNNEL_TOKEN]");
    CHECK_OUT("level debug [-v]");
    CHECK_OUT("tunnels       3");
    CHECK_OUT("web          http  localhost:3000 (127.0.0.1), name myapp");
    CHECK_OUT("db           tcp   127.0.0.1:5432 (127.0.0.1), remote "
              "port 30001");
    CHECK_OUT("config check: OK");
    CHECK(strstr(out, "env-token") == NULL, "the token was shown: %s", out);
    CHECK(strstr(out, "abc#def") == NULL, "the token was shown: %s", out);
    clean_env();

    CHECK_RC(RUN("config", "check", "--config", conf, "--name", "x"), 1);
    CHECK_ERR("--name is for the one tunnel");

    /* no file: fine, if the flags say enough */
    snprintf(path, sizeof(path), "%s/empty", dir);
    setenv("XDG_CONFIG_HOME", path, 1);
    CHECK_RC(RUN("config", "check", "--server", "e"), 0);
    CHECK_OUT("does not exist: flags and the environment are enough");
    CHECK_OUT("tunnels       0");

    CHECK_RC(RUN("config", "check"), 1);
    CHECK_ERR("no server given");
    CHECK_OUT("config check: 1 error");
    clean_env();

    CHECK_RC(RUN("config", "check", "--config", "/no/such.conf"), 1);
    CHECK_ERR("cannot read the config file /no/such.conf");

    /* the annotated example stays a valid file (make runs from the top) */
    if (access("examples/tunnel.conf", R_OK) == 0) {
        CHECK_RC(RUN("config", "check", "--config", "examples/tunnel.conf"),
                 0);
        CHECK_OUT("tunnels       5");
        CHECK_OUT("config check: OK");
    }
}


int
main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/test_options.XXXXXX");

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }

    clean_env();

    test_help_and_version();
    test_commands();
    test_command_errors();
    test_targets();
    test_options();
    test_tunnel_options();
    test_precedence();
    test_config_file();
    test_config_errors();
    test_start_selection();
    test_config_check();

    /* what the tests wrote, and nothing else */
    snprintf(path, sizeof(path), "rm -rf '%s'", dir);

    if (system(path) != 0) {
        fprintf(stderr, "cannot remove %s\n", dir);
    }

    return check_done("test_options");
}
