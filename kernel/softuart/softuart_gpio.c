// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * GPIO line backend: TX is an output GPIO, RX an input GPIO whose interrupt
 * fires on both edges. The handler stamps the time first thing, in hard
 * interrupt context even on PREEMPT_RT (IRQF_NO_THREAD), and reads the level
 * so that two edges merged into one interrupt are noticed.
 */
#include <linux/gpio/consumer.h>
#include <linux/interrupt.h>
#include <linux/of.h>
#include <linux/platform_device.h>
#include <linux/property.h>

#include "softuart.h"

struct softuart_gpio {
	struct softuart_port sp;
	struct gpio_desc *tx;
	struct gpio_desc *rx;
	int irq;
};

static struct softuart_gpio *to_gpio_line(struct softuart_port *sp)
{
	return container_of(sp, struct softuart_gpio, sp);
}

static void softuart_gpio_set_tx(struct softuart_port *sp, int level, ktime_t due)
{
	gpiod_set_value(to_gpio_line(sp)->tx, level);
}

static int softuart_gpio_rx_level(struct softuart_port *sp)
{
	return gpiod_get_value(to_gpio_line(sp)->rx) > 0;
}

static void softuart_gpio_rx_start(struct softuart_port *sp)
{
	enable_irq(to_gpio_line(sp)->irq);
}

static void softuart_gpio_rx_stop(struct softuart_port *sp)
{
	disable_irq(to_gpio_line(sp)->irq);
}

static const struct softuart_line_ops softuart_gpio_ops = {
	.name		= "gpio",
	.exact		= false,
	.set_tx		= softuart_gpio_set_tx,
	.rx_level	= softuart_gpio_rx_level,
	.rx_start	= softuart_gpio_rx_start,
	.rx_stop	= softuart_gpio_rx_stop,
};

static irqreturn_t softuart_gpio_irq(int irq, void *data)
{
	struct softuart_gpio *g = data;
	ktime_t t = ktime_get();

	softuart_rx_edge(&g->sp, t, gpiod_get_value(g->rx) > 0);
	return IRQ_HANDLED;
}

int softuart_gpio_probe(struct platform_device *pdev)
{
	struct device *dev = &pdev->dev;
	struct softuart_gpio *g;
	int ret, id;

	g = devm_kzalloc(dev, sizeof(*g), GFP_KERNEL);
	if (!g)
		return -ENOMEM;
	g->sp.line = &softuart_gpio_ops;

	/* Mark from the first instant: the line idles high through probe. */
	g->tx = devm_gpiod_get(dev, "tx", GPIOD_OUT_HIGH);
	if (IS_ERR(g->tx))
		return dev_err_probe(dev, PTR_ERR(g->tx), "no tx-gpios\n");
	g->rx = devm_gpiod_get(dev, "rx", GPIOD_IN);
	if (IS_ERR(g->rx))
		return dev_err_probe(dev, PTR_ERR(g->rx), "no rx-gpios\n");
	if (gpiod_cansleep(g->tx) || gpiod_cansleep(g->rx))
		return dev_err_probe(dev, -EINVAL,
				     "GPIOs behind a sleeping bus (I2C/SPI expander) cannot be bit-banged\n");

	g->irq = gpiod_to_irq(g->rx);
	if (g->irq < 0)
		return dev_err_probe(dev, g->irq, "rx GPIO has no interrupt\n");
	ret = devm_request_irq(dev, g->irq, softuart_gpio_irq,
			       IRQF_TRIGGER_RISING | IRQF_TRIGGER_FALLING |
			       IRQF_NO_THREAD | IRQF_NO_AUTOEN,
			       dev_name(dev), g);
	if (ret)
		return dev_err_probe(dev, ret, "cannot request rx interrupt\n");

	if (device_property_read_u32(dev, "current-speed", &g->sp.default_baud))
		g->sp.default_baud = SOFTUART_DEFAULT_BAUD;
	id = dev->of_node ? of_alias_get_id(dev->of_node, "softuart") : -1;

	ret = softuart_port_add(&g->sp, dev, id);
	if (ret)
		return ret;
	platform_set_drvdata(pdev, &g->sp);
	return 0;
}
