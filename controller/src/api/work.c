/* A fixed pool of threads for the API's slow requests (a wake that starts a
 * compute, a create, a drained suspend, a delete).  Their connections are
 * suspended meanwhile, so the epoll threads keep answering fast requests.
 * The queue is bounded: past it a request gets 503 at once rather than
 * piling up memory and latency without limit. */
#include "api/internal.h"

#include <pthread.h>
#include <stdlib.h>

#include "util/log.h"

typedef struct job {
    struct job *next;
    work_fn fn;
    void *arg;
} job;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static job *head, *tail;
static int queued, max_queued;
static bool stopping;
static pthread_t *threads;
static int nthreads;

static job *pop(void)
{
    job *j = head;

    head = j->next;
    if (head == NULL)
        tail = NULL;
    queued--;
    return j;
}

static void *worker(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (head == NULL && !stopping)
            pthread_cond_wait(&cv, &mu);
        if (head == NULL)
            break;
        job *j = pop();
        bool cancel = stopping;
        pthread_mutex_unlock(&mu);
        j->fn(j->arg, cancel);
        free(j);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

int api_work_start(int workers, int queue_max)
{
    threads = calloc((size_t)workers, sizeof(*threads));
    if (threads == NULL)
        return -1;
    stopping = false;
    max_queued = queue_max;
    for (nthreads = 0; nthreads < workers; nthreads++) {
        if (pthread_create(&threads[nthreads], NULL, worker, NULL) != 0) {
            log_error("API: cannot start worker thread %d", nthreads);
            api_work_stop();
            return -1;
        }
    }
    return 0;
}

int api_work_submit(work_fn fn, void *arg, void (*before)(void *arg))
{
    job *j = malloc(sizeof(*j));

    if (j == NULL)
        return -1;
    j->next = NULL;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&mu);
    if (stopping || queued >= max_queued) {
        pthread_mutex_unlock(&mu);
        free(j);
        return -1;
    }
    if (before)
        before(arg);
    if (tail)
        tail->next = j;
    else
        head = j;
    tail = j;
    queued++;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    return 0;
}

void api_work_stop(void)
{
    pthread_mutex_lock(&mu);
    stopping = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < nthreads; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    threads = NULL;
    nthreads = 0;
}

int api_work_queued(void)
{
    int n;

    pthread_mutex_lock(&mu);
    n = queued;
    pthread_mutex_unlock(&mu);
    return n;
}
