// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Test-only loopback lines. Every TX level change is delivered to an RX edge
 * path (the one the GPIO interrupt handler feeds), stamped with the instant
 * it was due, so the whole driver (tty layer, termios, TX timer, RX decoder
 * and timeout, counters) runs on a kernel that has no GPIO simulator.
 *
 *   loopback=N            N ports, each one's TX wired to its own RX
 *   loopback=N loopback_cross=1
 *                         ports wired in pairs: TX of 2k to RX of 2k+1 and
 *                         back, so two ports can disagree on line settings
 *
 * Nothing here exists unless loopback is set; no hardware is touched.
 */
#include <linux/module.h>
#include <linux/platform_device.h>

#include "softuart.h"
#include "softuart_compat.h"

#define SOFTUART_LOOP_DRV	SOFTUART_NAME "-loopback"

static unsigned int loopback;
module_param(loopback, uint, 0444);
MODULE_PARM_DESC(loopback, "test only: number of software loopback ports");

static bool loopback_cross;
module_param(loopback_cross, bool, 0444);
MODULE_PARM_DESC(loopback_cross, "test only: wire loopback ports in crossed pairs");

struct softuart_loop {
	struct softuart_port sp;
	int id;
	int level;		/* this port's TX wire; under the port's tx_lock */
};

/* Which port hears which: taken inside a port's tx_lock, before the peer's rx_lock. */
static DEFINE_RAW_SPINLOCK(softuart_loop_lock);
static struct softuart_loop *softuart_loop_ports[SOFTUART_MAX_PORTS];
static struct platform_device *softuart_loop_devs[SOFTUART_MAX_PORTS];

static struct softuart_loop *to_loop(struct softuart_port *sp)
{
	return container_of(sp, struct softuart_loop, sp);
}

static int softuart_loop_peer(int id)
{
	return loopback_cross ? id ^ 1 : id;
}

static void softuart_loop_set_tx(struct softuart_port *sp, int level, ktime_t due)
{
	struct softuart_loop *lp = to_loop(sp), *peer;
	unsigned long flags;

	if (level == READ_ONCE(lp->level))
		return;
	WRITE_ONCE(lp->level, level);
	raw_spin_lock_irqsave(&softuart_loop_lock, flags);
	peer = softuart_loop_ports[softuart_loop_peer(lp->id)];
	if (peer)
		softuart_rx_edge(&peer->sp, due, level);
	raw_spin_unlock_irqrestore(&softuart_loop_lock, flags);
}

static int softuart_loop_rx_level(struct softuart_port *sp)
{
	struct softuart_loop *peer;
	unsigned long flags;
	int level = 1;

	raw_spin_lock_irqsave(&softuart_loop_lock, flags);
	peer = softuart_loop_ports[softuart_loop_peer(to_loop(sp)->id)];
	if (peer)
		level = READ_ONCE(peer->level);
	raw_spin_unlock_irqrestore(&softuart_loop_lock, flags);
	return level;
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

static int softuart_loop_probe(struct platform_device *pdev)
{
	struct softuart_loop *lp;
	unsigned long flags;
	int ret;

	if (pdev->id < 0 || pdev->id >= SOFTUART_MAX_PORTS)
		return -EINVAL;
	lp = devm_kzalloc(&pdev->dev, sizeof(*lp), GFP_KERNEL);
	if (!lp)
		return -ENOMEM;
	lp->id = pdev->id;
	lp->level = 1;
	lp->sp.line = &softuart_loop_ops;
	lp->sp.default_baud = SOFTUART_DEFAULT_BAUD;
	ret = softuart_port_add(&lp->sp, &pdev->dev, -1);
	if (ret)
		return ret;
	platform_set_drvdata(pdev, lp);
	raw_spin_lock_irqsave(&softuart_loop_lock, flags);
	softuart_loop_ports[lp->id] = lp;
	raw_spin_unlock_irqrestore(&softuart_loop_lock, flags);
	return 0;
}

static void softuart_loop_remove(struct platform_device *pdev)
{
	struct softuart_loop *lp = platform_get_drvdata(pdev);
	unsigned long flags;

	/* Unwire first: the peer's TX timer must not reach freed memory. */
	raw_spin_lock_irqsave(&softuart_loop_lock, flags);
	softuart_loop_ports[lp->id] = NULL;
	raw_spin_unlock_irqrestore(&softuart_loop_lock, flags);
	softuart_port_remove(&lp->sp);
}
SOFTUART_DEFINE_REMOVE(softuart_loop_remove)

static struct platform_driver softuart_loop_driver = {
	.probe	= softuart_loop_probe,
	SOFTUART_PLATFORM_REMOVE(softuart_loop_remove),
	.driver	= {
		.name	= SOFTUART_LOOP_DRV,
	},
};

void softuart_loopback_exit(void)
{
	unsigned int i;

	if (!loopback)
		return;
	for (i = 0; i < ARRAY_SIZE(softuart_loop_devs); i++) {
		if (softuart_loop_devs[i])
			platform_device_unregister(softuart_loop_devs[i]);
		softuart_loop_devs[i] = NULL;
	}
	platform_driver_unregister(&softuart_loop_driver);
}

int softuart_loopback_init(void)
{
	unsigned int i;
	int ret;

	if (!loopback)
		return 0;
	if (loopback > SOFTUART_MAX_PORTS)
		return -EINVAL;
	ret = platform_driver_register(&softuart_loop_driver);
	if (ret)
		return ret;
	for (i = 0; i < loopback; i++) {
		struct platform_device *pdev;

		pdev = platform_device_register_simple(SOFTUART_LOOP_DRV, i, NULL, 0);
		if (IS_ERR(pdev)) {
			softuart_loopback_exit();
			return PTR_ERR(pdev);
		}
		softuart_loop_devs[i] = pdev;
	}
	return 0;
}
