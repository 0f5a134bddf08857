/*
 * The floor: the least work a proxy on kernel sockets can do per request.
 *
 * A single-threaded epoll relay that pairs each client connection with its
 * own backend connection (round robin over the backends) and copies bytes
 * both ways, unparsed. It does what nginx and HAProxy do per kept-alive
 * request on the wire (one read and one write on each side, the same TCP
 * segments) and nothing else: no HTTP parsing, no header rewriting, no
 * pool, no timers, no logging. Its cpu-us/req under ../shared/bench/peers.sh
 * is therefore a lower bound for any HTTP proxy on this machine, the part
 * of every row that only the kernel can make cheaper. bench/floor.sh runs it.
 *
 * Not part of modproxy, and not a proxy anyone should deploy: it forwards
 * whatever it gets and trusts both sides.
 *
 * usage: relay LISTEN_PORT BACKEND_PORT [BACKEND_PORT...]   (all 127.0.0.1)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536
/* An event whose pair was closed earlier in the same batch. */
#define GONE ((void *)-1)

/* One direction of a pair: bytes read from `from` not yet written to `to`. */
struct leg {
  char buf[BUF];
  size_t start, end;
};

struct pair {
  int fd[2];           /* 0: client, 1: backend */
  struct leg leg[2];   /* leg[s]: read from fd[s], written to fd[1 - s] */
  unsigned interest[2];
};

/* What epoll_event.data carries: the pair, and which of its sockets. */
struct side {
  struct pair *pair;
  int s;
};

static int ep;

static void die(const char *what) {
  perror(what);
  exit(1);
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

/* Reading from fd[s] waits while its leg still holds bytes; writing to
 * fd[s] is wanted while the other leg does. */
static void update_interest(struct pair *p, struct side *sides, int s) {
  unsigned want = 0;
  if (p->leg[s].start == p->leg[s].end)
    want |= EPOLLIN;
  if (p->leg[1 - s].start != p->leg[1 - s].end)
    want |= EPOLLOUT;
  if (want == p->interest[s])
    return;
  struct epoll_event ev = {.events = want, .data.ptr = &sides[s]};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, p->fd[s], &ev) < 0)
    die("epoll_ctl");
  p->interest[s] = want;
}

static void close_pair(struct pair *p, struct side *sides) {
  close(p->fd[0]);
  close(p->fd[1]);
  free(sides);
  free(p);
}

/* Writes what leg s holds to fd[1 - s]. Returns -1 when the pair is done. */
static int flush_leg(struct pair *p, int s) {
  struct leg *l = &p->leg[s];
  while (l->start < l->end) {
    ssize_t n = send(p->fd[1 - s], l->buf + l->start, l->end - l->start, MSG_NOSIGNAL);
    if (n < 0)
      return (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN) ? 0 : -1;
    l->start += n;
  }
  l->start = l->end = 0;
  return 0;
}

/* Reads from fd[s] into its (empty) leg and forwards it. -1: the pair is done. */
static int pump(struct pair *p, int s) {
  struct leg *l = &p->leg[s];
  ssize_t n = recv(p->fd[s], l->buf, BUF, 0);
  if (n == 0)
    return -1;
  if (n < 0)
    return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
  l->start = 0;
  l->end = n;
  return flush_leg(p, s);
}

static void open_pair(int client, const int *ports, int nports) {
  static unsigned next;
  int one = 1;
  int backend = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in to = loopback(ports[next++ % nports]);
  if (backend < 0)
    die("socket");
  setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(backend, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(backend, (struct sockaddr *)&to, sizeof to) < 0 && errno != EINPROGRESS) {
    close(client);
    close(backend);
    return;
  }
  struct pair *p = calloc(1, sizeof *p);
  struct side *sides = calloc(2, sizeof *sides);
  if (!p || !sides)
    die("calloc");
  p->fd[0] = client;
  p->fd[1] = backend;
  for (int s = 0; s < 2; s++) {
    sides[s] = (struct side){p, s};
    p->interest[s] = EPOLLIN;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &sides[s]};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, p->fd[s], &ev) < 0)
      die("epoll_ctl");
  }
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s LISTEN_PORT BACKEND_PORT [BACKEND_PORT...]\n", argv[0]);
    return 2;
  }
  int nports = argc - 2;
  int *ports = calloc(nports, sizeof *ports);
  for (int i = 0; i < nports; i++)
    ports[i] = atoi(argv[i + 2]);

  int one = 1;
  int lsn = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in at = loopback(atoi(argv[1]));
  setsockopt(lsn, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lsn, (struct sockaddr *)&at, sizeof at) < 0 || listen(lsn, 4096) < 0)
    die("listen");
  if ((ep = epoll_create1(0)) < 0)
    die("epoll_create1");
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lsn, &lev);

  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    if (n < 0 && errno != EINTR)
      die("epoll_wait");
    for (int i = 0; i < n; i++) {
      struct side *side = events[i].data.ptr;
      if (side == GONE)
        continue;
      if (!side) {
        int c;
        while ((c = accept4(lsn, NULL, NULL, SOCK_NONBLOCK)) >= 0)
          open_pair(c, ports, nports);
        continue;
      }
      struct pair *p = side->pair;
      struct side *sides = side - side->s;
      int s = side->s, done = 0;
      if (events[i].events & EPOLLOUT)
        done = flush_leg(p, 1 - s) < 0;
      if (!done && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
          p->leg[s].start == p->leg[s].end)
        done = pump(p, s) < 0;
      if (done) {
        /* Later events in this batch may name the pair about to be freed. */
        for (int j = i + 1; j < n; j++)
          if (events[j].data.ptr == &sides[0] || events[j].data.ptr == &sides[1])
            events[j].data.ptr = GONE;
        close_pair(p, sides);
        continue;
      }
      update_interest(p, sides, 0);
      update_interest(p, sides, 1);
    }
  }
}
