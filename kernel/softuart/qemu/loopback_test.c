// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Runs inside the QEMU guest against a softuart port whose TX is looped back
 * to its RX: for each line setting, write bytes, read them back, compare, and
 * check the port's error counters. Prints one line per case and ends with
 * "LOOPBACK PASS" or "LOOPBACK FAIL: <why>".
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/serial.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

struct lcase {
	speed_t speed;
	unsigned int baud;
	int bits;
	char parity;
	int stop;
	int count;
};

static const struct lcase cases[] = {
	{ B9600, 9600, 8, 'N', 1, 512 },
	{ B9600, 9600, 7, 'E', 1, 256 },
	{ B9600, 9600, 8, 'O', 2, 256 },
	{ B9600, 9600, 5, 'N', 2, 128 },
	{ B57600, 57600, 8, 'N', 1, 2048 },
	{ B57600, 57600, 8, 'E', 2, 1024 },
	{ B57600, 57600, 6, 'O', 1, 512 },
	{ B1200, 1200, 8, 'N', 1, 24 },
	{ B115200, 115200, 8, 'N', 1, 1024 },
};

static int failed;

static void fail(const char *what, const struct lcase *c)
{
	printf("CASE %u %d%c%d FAIL: %s\n", c->baud, c->bits, c->parity, c->stop, what);
	failed = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int configure(int fd, const struct lcase *c, tcflag_t extra_iflag)
{
	struct termios t;
	static const tcflag_t sizes[] = { CS5, CS6, CS7, CS8 };

	if (tcgetattr(fd, &t))
		return -1;
	cfmakeraw(&t);
	t.c_iflag &= ~(IGNPAR | INPCK);	/* cfmakeraw leaves these alone */
	t.c_iflag |= extra_iflag;
	t.c_cflag &= ~(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
	t.c_cflag |= sizes[c->bits - 5] | CREAD | CLOCAL;
	if (c->parity != 'N')
		t.c_cflag |= PARENB | (c->parity == 'O' ? PARODD : 0);
	if (c->stop == 2)
		t.c_cflag |= CSTOPB;
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	cfsetispeed(&t, c->speed);
	cfsetospeed(&t, c->speed);
	if (tcsetattr(fd, TCSANOW, &t))
		return -1;
	if (tcgetattr(fd, &t) || cfgetospeed(&t) != c->speed)
		return -1;
	return tcflush(fd, TCIOFLUSH);
}

/* Read @n bytes into @buf within @timeout seconds; returns how many arrived. */
static int read_all(int fd, unsigned char *buf, int n, double timeout)
{
	double end = now_s() + timeout;
	int got = 0;

	while (got < n && now_s() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 100) <= 0)
			continue;
		r = read(fd, buf + got, n - got);
		if (r > 0)
			got += r;
	}
	return got;
}

static int write_all(int fd, const unsigned char *buf, int n)
{
	int done = 0;

	while (done < n) {
		ssize_t w = write(fd, buf + done, n - done);

		if (w < 0 && errno != EINTR)
			return -1;
		if (w > 0)
			done += w;
	}
	return 0;
}

static void run_case(int fd, const struct lcase *c, unsigned int seed)
{
	unsigned char *out = malloc(c->count), *in = calloc(1, c->count + 16);
	struct serial_icounter_struct before, after;
	double frame_s = (1.0 + c->bits + (c->parity != 'N') + c->stop) / c->baud;
	double t0;
	int i, got;
	char why[160];

	if (configure(fd, c, 0)) {
		fail("tcsetattr", c);
		goto out;
	}
	for (i = 0; i < c->count; i++) {
		seed = seed * 1103515245u + 12345u;
		out[i] = (seed >> 16) & ((1u << c->bits) - 1u);
	}
	ioctl(fd, TIOCGICOUNT, &before);
	t0 = now_s();
	if (write_all(fd, out, c->count)) {
		fail("write", c);
		goto out;
	}
	got = read_all(fd, in, c->count, 5.0 + 4.0 * frame_s * c->count);
	/* Nothing more may arrive: no duplicated or invented characters. */
	got += read_all(fd, in + got, 16, 0.05 + 20 * frame_s);
	ioctl(fd, TIOCGICOUNT, &after);

	if (got != c->count || memcmp(in, out, c->count)) {
		for (i = 0; i < got && i < c->count && in[i] == out[i]; i++)
			;
		snprintf(why, sizeof(why), "got %d of %d bytes, first difference at %d",
			 got, c->count, i);
		fail(why, c);
	} else if (after.frame != before.frame || after.parity != before.parity ||
		   after.overrun != before.overrun || after.brk != before.brk ||
		   after.rx - before.rx != c->count || after.tx - before.tx != c->count) {
		snprintf(why, sizeof(why), "counters rx+%d tx+%d fe+%d pe+%d oe+%d brk+%d",
			 after.rx - before.rx, after.tx - before.tx, after.frame - before.frame,
			 after.parity - before.parity, after.overrun - before.overrun,
			 after.brk - before.brk);
		fail(why, c);
	} else {
		printf("CASE %u %d%c%d ok %d bytes in %.2f s\n", c->baud, c->bits, c->parity,
		       c->stop, c->count, now_s() - t0);
	}
out:
	free(out);
	free(in);
}

/* A break arrives as \377 \0 \0 with PARMRK, is counted, and the line recovers. */
static void run_break(int fd)
{
	static const struct lcase c = { B9600, 9600, 8, 'E', 1, 3 };
	static const unsigned char want[] = { 0xff, 0x00, 0x00, 'Z' };
	struct serial_icounter_struct before, after;
	unsigned char in[8] = { 0 };
	int got;

	if (configure(fd, &c, PARMRK | INPCK)) {
		fail("tcsetattr (break)", &c);
		return;
	}
	ioctl(fd, TIOCGICOUNT, &before);
	if (tcsendbreak(fd, 0) || write_all(fd, (const unsigned char *)"Z", 1)) {
		fail("tcsendbreak", &c);
		return;
	}
	got = read_all(fd, in, 4, 3.0);
	ioctl(fd, TIOCGICOUNT, &after);
	if (got != 4 || memcmp(in, want, 4) || after.brk - before.brk != 1) {
		printf("break: got %d bytes %02x %02x %02x %02x, brk+%d\n", got, in[0], in[1],
		       in[2], in[3], after.brk - before.brk);
		fail("break", &c);
	} else {
		printf("CASE break ok\n");
	}
}

/* tcdrain waits for the last stop bit; tcflush drops what is queued, ours included. */
static void run_drain_and_flush(int fd)
{
	static const struct lcase c = { B9600, 9600, 8, 'N', 1, 100 };
	static const struct lcase slow = { B1200, 1200, 8, 'N', 1, 200 };
	unsigned char buf[256] = { 0 };
	double t0, took;
	int got;

	if (configure(fd, &c, 0)) {
		fail("tcsetattr (drain)", &c);
		return;
	}
	t0 = now_s();
	write_all(fd, buf, c.count);
	tcdrain(fd);
	took = now_s() - t0;
	got = read_all(fd, buf, c.count, 2.0);
	/* 100 frames of 10 bits at 9600 baud take 104 ms. */
	if (took < 0.095 || got != c.count) {
		printf("drain: returned after %.3f s, %d bytes back\n", took, got);
		fail("tcdrain", &c);
	} else {
		printf("CASE drain ok %.3f s\n", took);
	}

	if (configure(fd, &slow, 0)) {
		fail("tcsetattr (flush)", &slow);
		return;
	}
	t0 = now_s();
	write_all(fd, buf, slow.count);
	usleep(20000);
	tcflush(fd, TCOFLUSH);
	took = now_s() - t0;
	got = read_all(fd, buf, slow.count, 0.5);
	/* What went out before the flush, plus the frame on the wire. */
	if (got > (int)(took * 1200 / 10) + 1) {
		printf("flush: %d of %d bytes still went out\n", got, slow.count);
		fail("tcflush", &slow);
	} else {
		printf("CASE flush ok (%d bytes were on the wire)\n", got);
	}
}

/*
 * Two ports wired TX->RX crosswise and set up to disagree: every byte must
 * arrive flagged (PARMRK: \377 \0 c), counted in icount, or dropped under
 * IGNPAR.
 */
static void run_pair(int a, int b)
{
	static const struct lcase ok = { B57600, 57600, 8, 'N', 1, 256 };
	static const struct lcase even = { B9600, 9600, 8, 'E', 1, 16 };
	static const struct lcase odd = { B9600, 9600, 8, 'O', 1, 16 };
	static const struct lcase n1 = { B9600, 9600, 8, 'N', 1, 16 };
	static const struct lcase n2_7 = { B9600, 9600, 7, 'N', 2, 16 };
	struct serial_icounter_struct before, after;
	unsigned char out[256], in[512], want[64];
	int i, got;

	for (i = 0; i < 256; i++)
		out[i] = (unsigned char)(i * 37 + 11);
	if (configure(a, &ok, 0) || configure(b, &ok, 0))
		return fail("tcsetattr (pair)", &ok);
	write_all(a, out, ok.count);
	got = read_all(b, in, ok.count, 5.0);
	if (got != ok.count || memcmp(in, out, ok.count))
		fail("pair: bytes from the other port", &ok);
	else
		printf("CASE pair ok\n");

	/* Parity: sent even, expected odd. Bytes 1..16: no \377 to escape. */
	for (i = 0; i < 16; i++)
		out[i] = (unsigned char)(i + 1);
	for (i = 0; i < 16; i++) {
		want[3 * i] = 0xff;
		want[3 * i + 1] = 0;
		want[3 * i + 2] = out[i];
	}
	if (configure(a, &even, 0) || configure(b, &odd, INPCK | PARMRK))
		return fail("tcsetattr (parity)", &odd);
	ioctl(b, TIOCGICOUNT, &before);
	write_all(a, out, 16);
	got = read_all(b, in, 48, 3.0);
	ioctl(b, TIOCGICOUNT, &after);
	if (got != 48 || memcmp(in, want, 48) || after.parity - before.parity != 16 ||
	    after.frame != before.frame)
		fail("parity errors not flagged and counted", &odd);
	else
		printf("CASE parity-error ok\n");

	/* The same under IGNPAR: counted, not delivered. */
	if (configure(b, &odd, INPCK | IGNPAR))
		return fail("tcsetattr (ignpar)", &odd);
	ioctl(b, TIOCGICOUNT, &before);
	write_all(a, out, 16);
	tcdrain(a);
	got = read_all(b, in, 16, 0.5);
	ioctl(b, TIOCGICOUNT, &after);
	if (got != 0 || after.parity - before.parity != 16)
		fail("IGNPAR", &odd);
	else
		printf("CASE ignpar ok\n");

	/*
	 * Framing: 8N1 bytes with bit 7 clear read as 7N2 put a space where
	 * the first stop bit belongs; the data is the low seven bits.
	 */
	for (i = 0; i < 16; i++) {
		out[i] = (unsigned char)((i * 23 + 5) & 0x7f);
		want[3 * i] = 0xff;
		want[3 * i + 1] = 0;
		want[3 * i + 2] = out[i];
	}
	if (configure(a, &n1, 0) || configure(b, &n2_7, INPCK | PARMRK))
		return fail("tcsetattr (framing)", &n2_7);
	ioctl(b, TIOCGICOUNT, &before);
	write_all(a, out, 16);
	got = read_all(b, in, 48, 3.0);
	ioctl(b, TIOCGICOUNT, &after);
	if (got != 48 || memcmp(in, want, 48) || after.frame - before.frame != 16) {
		printf("framing: %d bytes, fe+%d:", got, after.frame - before.frame);
		for (i = 0; i < got && i < 48; i++)
			printf(" %02x", in[i]);
		printf("\n");
		fail("framing errors not flagged and counted", &n2_7);
	}
	else
		printf("CASE framing-error ok\n");
}

int main(int argc, char **argv)
{
	const char *dev = argc > 1 ? argv[1] : "/dev/ttySOFT0";
	struct termios t;
	unsigned int i;
	int fd;

	setvbuf(stdout, NULL, _IONBF, 0);
	fd = open(dev, O_RDWR | O_NOCTTY);
	if (fd < 0) {
		printf("LOOPBACK FAIL: open %s: %s\n", dev, strerror(errno));
		return 1;
	}
	if (argc > 3 && !strcmp(argv[2], "--pair")) {
		int b = open(argv[3], O_RDWR | O_NOCTTY);

		if (b < 0) {
			printf("LOOPBACK FAIL: open %s: %s\n", argv[3], strerror(errno));
			return 1;
		}
		run_pair(fd, b);
		close(b);
		close(fd);
		printf(failed ? "LOOPBACK FAIL: see CASE lines\n" : "LOOPBACK PASS\n");
		return failed;
	}
	if (argc > 2 && !strcmp(argv[2], "--quick")) {
		/* A second instance: one case per tested rate. */
		run_case(fd, &cases[1], 99);
		run_case(fd, &cases[5], 98);
		close(fd);
		printf(failed ? "LOOPBACK FAIL: see CASE lines\n" : "LOOPBACK PASS\n");
		return failed;
	}
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(fd, &cases[i], 17 + i);
	run_break(fd);
	run_drain_and_flush(fd);

	/* Mark/space parity is not supported and must not be claimed. */
	tcgetattr(fd, &t);
	t.c_cflag |= CMSPAR | PARENB;
	tcsetattr(fd, TCSANOW, &t);
	tcgetattr(fd, &t);
	if (t.c_cflag & CMSPAR) {
		printf("termios kept CMSPAR\n");
		failed = 1;
	}
	close(fd);
	printf(failed ? "LOOPBACK FAIL: see CASE lines\n" : "LOOPBACK PASS\n");
	return failed;
}
