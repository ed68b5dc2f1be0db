/*
 * The connect benchmark's client (bench/proxy_bench.py), one libmariadb
 * client for every path so that the paths differ only in what is between
 * the client and mariadbd.  Python's own cost (pymysql) would be most of a
 * 0.5 ms connect and add its noise to every path.
 *
 *   connect_client connect N USER PASSWORD DB PORT...
 *       N rounds; each round, for every PORT in turn: connect + auth +
 *       SELECT 1 + close, timed.  Prints "PORT MS" per connect.
 *   connect_client rtt N USER PASSWORD DB PORT...
 *       one open session per PORT; N rounds of SELECT 1 on each in turn.
 *       Prints "PORT MS" per query: the proxied round trip.
 *
 * Round-robin over the ports in one process: a busy moment of the machine
 * hits every path alike.  Loopback only (127.0.0.1), no TLS.
 */

#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


static double
now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}


static MYSQL *
open_session(const char *user, const char *pw, const char *db, unsigned port)
{
    MYSQL       *m;
    my_bool      off = 0;
    unsigned     timeout = 30;

    m = mysql_init(NULL);
    if (m == NULL) {
        return NULL;
    }

    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &off);

    if (mysql_real_connect(m, "127.0.0.1", user, pw, db, port, NULL, 0)
        == NULL)
    {
        fprintf(stderr, "port %u: connect: %s\n", port, mysql_error(m));
        mysql_close(m);
        return NULL;
    }

    return m;
}


static int
select1(MYSQL *m)
{
    MYSQL_RES  *res;
    MYSQL_ROW   row;

    if (mysql_real_query(m, "SELECT 1", 8) != 0) {
        fprintf(stderr, "SELECT 1: %s\n", mysql_error(m));
        return -1;
    }

    res = mysql_store_result(m);
    if (res == NULL) {
        fprintf(stderr, "SELECT 1: no result: %s\n", mysql_error(m));
        return -1;
    }

    row = mysql_fetch_row(res);
    if (row == NULL || row[0] == NULL || strcmp(row[0], "1") != 0) {
        fprintf(stderr, "SELECT 1: wrong result\n");
        mysql_free_result(res);
        return -1;
    }

    mysql_free_result(res);

    return 0;
}


int
main(int argc, char **argv)
{
    int          i, j, n, nports;
    double       t0;
    MYSQL       *m, **open;
    unsigned    *ports;
    const char  *mode, *user, *pw, *db;

    if (argc < 7) {
        fprintf(stderr, "usage: %s connect|rtt N USER PASSWORD DB PORT...\n",
                argv[0]);
        return 2;
    }

    mode = argv[1];
    n = atoi(argv[2]);
    user = argv[3];
    pw = argv[4];
    db = argv[5];
    nports = argc - 6;

    ports = calloc(nports, sizeof(unsigned));
    open = calloc(nports, sizeof(MYSQL *));
    if (ports == NULL || open == NULL) {
        return 1;
    }

    for (j = 0; j < nports; j++) {
        ports[j] = (unsigned) atoi(argv[6 + j]);
    }

    if (strcmp(mode, "rtt") == 0) {
        for (j = 0; j < nports; j++) {
            open[j] = open_session(user, pw, db, ports[j]);
            if (open[j] == NULL || select1(open[j]) != 0) {
                return 1;
            }
        }
    }

    for (i = 0; i < n; i++) {
        for (j = 0; j < nports; j++) {
            t0 = now_ms();

            if (open[j]) {
                if (select1(open[j]) != 0) {
                    return 1;
                }

            } else {
                m = open_session(user, pw, db, ports[j]);
                if (m == NULL || select1(m) != 0) {
                    return 1;
                }

                mysql_close(m);
            }

            printf("%u %.4f\n", ports[j], now_ms() - t0);
        }
    }

    for (j = 0; j < nports; j++) {
        if (open[j]) {
            mysql_close(open[j]);
        }
    }

    return 0;
}
