/* The C test program of egress --stacks: on each SIGUSR2, check_for_updates
 * connects to the vendor (argv[1], argv[2]) with a one-second timeout. The
 * test builds it with frame pointers (named, unwound) and without them and
 * stripped (module+offset only, never a wrong name). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t wanted, stop;

static void on_signal(int sig)
{
	if (sig == SIGUSR2)
		wanted = 1;
	else
		stop = 1;
}

__attribute__((noinline)) static int check_for_updates(const char *ip, int port)
{
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	if (inet_pton(AF_INET, ip, &sin.sin_addr) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	int r = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
	if (r < 0 && errno == EINPROGRESS) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		r = poll(&p, 1, 1000) == 1 ? 0 : -1;
	}
	printf("update check: %s\n", r == 0 ? "answered" : "no answer");
	fflush(stdout);
	close(fd);
	return r;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: phonehome IP PORT\n");
		return 2;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	printf("ready\n");
	fflush(stdout);
	while (!stop) {
		pause();
		if (wanted) {
			wanted = 0;
			check_for_updates(argv[1], atoi(argv[2]));
		}
	}
	return 0;
}
