/* smdbctl: the command-line client of the controller's REST API.
 *
 *   smdbctl [--url URL] [--token TOKEN] COMMAND ...
 *
 * URL and token default to $SMDB_URL (http://127.0.0.1:8480) and
 * $SMDB_API_TOKEN.  Prints the API's JSON answer; exits 1 on an HTTP error. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strbuf.h"

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    return sb_add(arg, p, size * n) ? size * n : 0;
}

static int request(const char *url, const char *token, const char *method, const char *path,
                   const char *json)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char full[2048], auth[600];
    strbuf b = {0};
    long status = 0;
    CURLcode rc;

    snprintf(full, sizeof(full), "%s%s", url, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token ? token : "");
    h = curl_slist_append(h, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, full);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    if (json)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        fprintf(stderr, "smdbctl: %s: %s\n", full, curl_easy_strerror(rc));
        sb_free(&b);
        return 1;
    }
    if (b.len > 0) {
        json_t *doc = json_loads(b.buf, 0, NULL);
        if (doc) {
            char *pretty = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            puts(pretty);
            free(pretty);
            json_decref(doc);
        } else {
            fputs(b.buf, stdout);
        }
    }
    sb_free(&b);
    if (status >= 400) {
        fprintf(stderr, "smdbctl: HTTP %ld\n", status);
        return 1;
    }
    return 0;
}

static void usage(void)
{
    fputs("usage: smdbctl [--url URL] [--token TOKEN] COMMAND\n"
          "  project create ID [--idle-timeout S] [--freeze-after S] [--min-cu N] [--max-cu N]\n"
          "  project list | project show ID | project delete ID\n"
          "  compute create PROJECT | compute show ID | compute delete ID\n"
          "  compute suspend ID [--freeze] [--now] | compute resume ID\n"
          "  compute resize ID CU\n"
          "  usage PROJECT [--from RFC3339] [--to RFC3339]\n"
          "  wake PROJECT            (uses $SMDB_WAKE_TOKEN)\n"
          "  metrics | health\n",
          stderr);
    exit(2);
}

static int opt_int(int argc, char **argv, const char *name, json_t *doc, const char *field)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) {
            char *end;
            long v = strtol(argv[i + 1], &end, 10);
            if (*end != '\0') {
                fprintf(stderr, "smdbctl: %s needs a number\n", name);
                exit(2);
            }
            json_object_set_new(doc, field, json_integer(v));
        }
    return 0;
}

static const char *opt_str(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

static int plain_get(const char *url, const char *token, const char *path)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char full[2048], auth[600];
    long status = 0;
    CURLcode rc;

    snprintf(full, sizeof(full), "%s%s", url, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token ? token : "");
    h = curl_slist_append(h, auth);
    curl_easy_setopt(c, CURLOPT_URL, full);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return (rc == CURLE_OK && status < 400) ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *url = getenv("SMDB_URL"), *token = getenv("SMDB_API_TOKEN");
    char path[1024];
    int i = 1, rc;

    if (url == NULL)
        url = "http://127.0.0.1:8480";
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--url") == 0)
            url = argv[i + 1];
        else if (strcmp(argv[i], "--token") == 0)
            token = argv[i + 1];
        else
            usage();
    }
    argc -= i;
    argv += i;
    if (argc < 1)
        usage();
    curl_global_init(CURL_GLOBAL_DEFAULT);

    if (strcmp(argv[0], "project") == 0 && argc >= 2) {
        if (strcmp(argv[1], "list") == 0)
            return request(url, token, "GET", "/api/v1/projects", NULL);
        if (argc < 3)
            usage();
        if (strcmp(argv[1], "create") == 0) {
            json_t *doc = json_pack("{s:s}", "id", argv[2]);
            char *s;
            opt_int(argc, argv, "--idle-timeout", doc, "idle_timeout_s");
            opt_int(argc, argv, "--freeze-after", doc, "freeze_after_s");
            opt_int(argc, argv, "--min-cu", doc, "min_cu");
            opt_int(argc, argv, "--max-cu", doc, "max_cu");
            s = json_dumps(doc, JSON_COMPACT);
            rc = request(url, token, "POST", "/api/v1/projects", s);
            free(s);
            json_decref(doc);
            return rc;
        }
        snprintf(path, sizeof(path), "/api/v1/projects/%s", argv[2]);
        if (strcmp(argv[1], "show") == 0)
            return request(url, token, "GET", path, NULL);
        if (strcmp(argv[1], "delete") == 0)
            return request(url, token, "DELETE", path, NULL);
    } else if (strcmp(argv[0], "compute") == 0 && argc >= 3) {
        if (strcmp(argv[1], "create") == 0) {
            snprintf(path, sizeof(path), "/api/v1/projects/%s/compute", argv[2]);
            return request(url, token, "POST", path, "{}");
        }
        snprintf(path, sizeof(path), "/api/v1/compute/%s", argv[2]);
        if (strcmp(argv[1], "show") == 0)
            return request(url, token, "GET", path, NULL);
        if (strcmp(argv[1], "delete") == 0)
            return request(url, token, "DELETE", path, NULL);
        if (strcmp(argv[1], "suspend") == 0) {
            bool freeze = false, now = false;
            char body[64];
            for (int k = 3; k < argc; k++) {
                if (strcmp(argv[k], "--freeze") == 0)
                    freeze = true;
                else if (strcmp(argv[k], "--now") == 0)
                    now = true;
                else
                    usage();
            }
            snprintf(body, sizeof(body), "{\"mode\":\"%s\",\"drain\":%s}",
                     freeze ? "freeze" : "stop", now ? "false" : "true");
            strncat(path, "/suspend", sizeof(path) - strlen(path) - 1);
            return request(url, token, "POST", path, body);
        }
        if (strcmp(argv[1], "resume") == 0) {
            strncat(path, "/resume", sizeof(path) - strlen(path) - 1);
            return request(url, token, "POST", path, NULL);
        }
        if (strcmp(argv[1], "resize") == 0 && argc == 4) {
            char body[64], *end;
            long cu = strtol(argv[3], &end, 10);
            if (*argv[3] == '\0' || *end != '\0' || cu < 1 || cu > 1024)
                usage();
            snprintf(body, sizeof(body), "{\"cu\":%ld}", cu);
            strncat(path, "/resize", sizeof(path) - strlen(path) - 1);
            return request(url, token, "POST", path, body);
        }
    } else if (strcmp(argv[0], "usage") == 0 && argc >= 2) {
        const char *from = opt_str(argc, argv, "--from"), *to = opt_str(argc, argv, "--to");
        char *ef = from ? curl_easy_escape(NULL, from, 0) : NULL;
        char *et = to ? curl_easy_escape(NULL, to, 0) : NULL;
        snprintf(path, sizeof(path), "/api/v1/projects/%s/usage?%s%s%s%s", argv[1],
                 ef ? "from=" : "", ef ? ef : "", et ? "&to=" : "", et ? et : "");
        curl_free(ef);
        curl_free(et);
        return request(url, token, "GET", path, NULL);
    } else if (strcmp(argv[0], "wake") == 0 && argc >= 2) {
        snprintf(path, sizeof(path), "/wake_compute?endpointish=%s", argv[1]);
        return request(url, getenv("SMDB_WAKE_TOKEN"), "GET", path, NULL);
    } else if (strcmp(argv[0], "metrics") == 0) {
        return plain_get(url, token, "/metrics");
    } else if (strcmp(argv[0], "health") == 0) {
        return request(url, NULL, "GET", "/healthz", NULL);
    }
    usage();
    return 2;
}
