// SPDX-License-Identifier: GPL-3.0-or-later
/*
 * Baseline writer and far-end reader for bench/frame_clock.py.
 *
 *   frame_clock_helper writer PATH PERIOD_NS SECONDS
 *       the best a program can do here: SCHED_FIFO, mlockall, and a 25-byte
 *       write at each absolute deadline t0 + k*P (clock_nanosleep TIMER_ABSTIME)
 *   frame_clock_helper reader FD OUTFILE SECONDS
 *       reads the pty master FD, records (CLOCK_MONOTONIC ns, byte count) per
 *       read into OUTFILE as int64 pairs; SCHED_FIFO above the writers; stops
 *       on SIGTERM or after SECONDS
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t helper_stop;

static void helper_on_term(int sig)
{
	(void)sig;
	helper_stop = 1;
}

static int64_t helper_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *helper_realtime(int prio)
{
	struct sched_param sp = { .sched_priority = prio };

	if (mlockall(MCL_CURRENT | MCL_FUTURE))
		return "mlockall refused";
	if (sched_setscheduler(0, SCHED_FIFO, &sp))
		return "SCHED_FIFO refused";
	return "SCHED_FIFO+mlockall";
}

static int helper_writer(const char *path, int64_t period, double seconds)
{
	unsigned char frame[25] = { 0x0f };
	const char *rt;
	int64_t next, end;
	struct timespec ts;
	int fd;

	fd = open(path, O_WRONLY | O_NOCTTY);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	rt = helper_realtime(50);
	next = helper_now() + period;
	end = next + (int64_t)(seconds * 1e9);
	while (next < end) {
		ts.tv_sec = next / 1000000000;
		ts.tv_nsec = next % 1000000000;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		if (write(fd, frame, sizeof(frame)) < 0 && errno != EAGAIN) {
			perror("write");
			return 1;
		}
		next += period;
	}
	printf("{\"realtime\": \"%s\"}\n", rt);
	return 0;
}

static int helper_reader(int fd, const char *out, double seconds)
{
	size_t cap = 1 << 20, n = 0;
	int64_t *rec = malloc(cap * 2 * sizeof(*rec));
	int64_t end = helper_now() + (int64_t)(seconds * 1e9);
	unsigned char buf[4096];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	FILE *f;

	if (!rec)
		return 1;
	signal(SIGTERM, helper_on_term);
	helper_realtime(60);
	while (!helper_stop && helper_now() < end && n < cap) {
		ssize_t got;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		got = read(fd, buf, sizeof(buf));
		if (got <= 0) {
			if (got < 0 && errno != EAGAIN && errno != EIO)
				break;
			continue;
		}
		rec[2 * n] = helper_now();
		rec[2 * n + 1] = got;
		n++;
	}
	f = fopen(out, "wb");
	if (!f || fwrite(rec, 2 * sizeof(*rec), n, f) != n) {
		perror(out);
		return 1;
	}
	fclose(f);
	free(rec);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "writer"))
		return helper_writer(argv[2], atoll(argv[3]), atof(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "reader"))
		return helper_reader(atoi(argv[2]), argv[3], atof(argv[4]));
	fprintf(stderr, "usage: %s writer PATH PERIOD_NS SECONDS | reader FD OUTFILE SECONDS\n",
		argv[0]);
	return 2;
}
