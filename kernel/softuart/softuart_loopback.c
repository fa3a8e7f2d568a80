// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Test-only loopback line: TX is wired to RX in software. Every TX level
 * change is delivered to the RX edge path (the one the GPIO interrupt
 * handler feeds) stamped with the instant it was due, so the whole driver
 * (tty layer, termios, TX timer, RX decoder and timeout, counters) runs on a
 * kernel that has no GPIO simulator. Created only by the module parameter
 * loopback=N; no hardware is touched.
 */
#include <linux/platform_device.h>

#include "softuart.h"

struct softuart_loop {
	struct softuart_port sp;
	int level;		/* the virtual wire; under the port's tx_lock */
};

static struct softuart_loop *to_loop(struct softuart_port *sp)
{
	return container_of(sp, struct softuart_loop, sp);
}

static void softuart_loop_set_tx(struct softuart_port *sp, int level, ktime_t due)
{
	struct softuart_loop *lp = to_loop(sp);

	if (level == READ_ONCE(lp->level))
		return;
	WRITE_ONCE(lp->level, level);
	softuart_rx_edge(sp, due, level);
}

static int softuart_loop_rx_level(struct softuart_port *sp)
{
	return READ_ONCE(to_loop(sp)->level);
}

static void softuart_loop_rx_start(struct softuart_port *sp)
{
}

static void softuart_loop_rx_stop(struct softuart_port *sp)
{
}

static const struct softuart_line_ops softuart_loop_ops = {
	.name		= "loopback",
	.exact		= true,
	.set_tx		= softuart_loop_set_tx,
	.rx_level	= softuart_loop_rx_level,
	.rx_start	= softuart_loop_rx_start,
	.rx_stop	= softuart_loop_rx_stop,
};

int softuart_loopback_probe(struct platform_device *pdev)
{
	struct softuart_loop *lp;
	int ret;

	lp = devm_kzalloc(&pdev->dev, sizeof(*lp), GFP_KERNEL);
	if (!lp)
		return -ENOMEM;
	lp->level = 1;
	lp->sp.line = &softuart_loop_ops;
	lp->sp.default_baud = SOFTUART_DEFAULT_BAUD;
	ret = softuart_port_add(&lp->sp, &pdev->dev, -1);
	if (ret)
		return ret;
	platform_set_drvdata(pdev, &lp->sp);
	return 0;
}
