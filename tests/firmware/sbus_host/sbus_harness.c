/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Drives LibrePilot's S.Bus decoder (pios_sbus.c, compiled for the host with
 * the stand-ins in stubs/) with exact byte and tick times, and prints how many
 * frames reached the channels.
 *
 * usage: sbus_harness PERIOD_US FRAMES PHASE_US [BAD_END_FRAME [GAP_AFTER_FRAME GAP_US]]
 *
 * Frame n starts on the wire at 10 ms + n * PERIOD_US (+ GAP_US for frames
 * after GAP_AFTER_FRAME); byte k of it is reported when its stop bits end,
 * (k + 1) * 120 us later. The 625 Hz supervisor ticks at PHASE_US + m * 1600 us.
 * Frame BAD_END_FRAME (if >= 0) carries 0xFF as its end byte. Each frame puts
 * a fresh value in channel 1; a frame counts as accepted when the decoder
 * shows that value right after the frame's last byte.
 * Output: "accepted A of N" and one line "lost n" per frame that was not.
 * Times are kept in units of 0.1 us so that every event time is exact.
 */
#include "pios_sbus.c"

#include <stdio.h>

#define UNITS_PER_US 10LL
#define BYTE_UNITS   (120 * UNITS_PER_US)
#define TICK_UNITS   (1600 * UNITS_PER_US)

static struct pios_sbus_dev *dev;

static uint32_t dev_id(void)
{
    uintptr_t p = (uintptr_t)dev;

    /* the driver passes its device as a uint32_t; built with -no-pie it fits */
    PIOS_Assert((uintptr_t)(uint32_t)p == p);
    return (uint32_t)p;
}

static void build_frame(uint8_t frame[SBUS_FRAME_LENGTH], uint16_t ch1, bool bad_end)
{
    uint16_t ch[16];
    uint32_t acc  = 0;
    int bits      = 0;
    int out       = 1;

    for (int i = 0; i < 16; i++) {
        ch[i] = 992;
    }
    ch[0]    = ch1;
    frame[0] = SBUS_SOF_BYTE;
    for (int i = 0; i < 16; i++) {
        acc  |= (uint32_t)(ch[i] & 0x7ff) << bits;
        bits += 11;
        while (bits >= 8) {
            frame[out++] = acc & 0xff;
            acc >>= 8;
            bits -= 8;
        }
    }
    frame[23] = 0; /* flags: no frame lost, no failsafe */
    frame[24] = bad_end ? 0xff : SBUS_EOF_BYTE;
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5 && argc != 7) {
        fprintf(stderr, "usage: %s PERIOD_US FRAMES PHASE_US "
                "[BAD_END_FRAME [GAP_AFTER_FRAME GAP_US]]\n", argv[0]);
        return 2;
    }
    long long period = atoll(argv[1]) * UNITS_PER_US;
    int frames       = atoi(argv[2]);
    long long phase  = atoll(argv[3]) * UNITS_PER_US;
    int bad_end      = argc >= 5 ? atoi(argv[4]) : -1;
    int gap_after    = argc == 7 ? atoi(argv[5]) : -1;
    long long gap    = argc == 7 ? atoll(argv[6]) * UNITS_PER_US : 0;

    if (period < 25 * BYTE_UNITS || frames <= 0 || phase < 0 || phase >= TICK_UNITS) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    dev = PIOS_SBus_Alloc();
    PIOS_Assert(dev);
    PIOS_SBus_ResetState(&dev->state);

    long long next_tick = phase;
    int accepted = 0;
    for (int n = 0; n < frames; n++) {
        uint8_t frame[SBUS_FRAME_LENGTH];
        uint16_t value  = (uint16_t)(200 + n % 1600);
        long long start = 10000 * UNITS_PER_US + n * period + (gap_after >= 0 && n > gap_after ? gap : 0);

        build_frame(frame, value, n == bad_end);
        for (int k = 0; k < SBUS_FRAME_LENGTH; k++) {
            long long t = start + (k + 1) * BYTE_UNITS;
            /* a tick due at the same instant as a byte runs first */
            while (next_tick <= t) {
                PIOS_SBus_Supervisor(dev_id());
                next_tick += TICK_UNITS;
            }
            uint16_t headroom;
            bool yield;
            PIOS_SBus_RxInCallback(dev_id(), &frame[k], 1, &headroom, &yield);
        }
        if (PIOS_SBus_Get(dev_id(), 0) == value) {
            accepted++;
        } else {
            printf("lost %d\n", n);
        }
    }
    printf("accepted %d of %d\n", accepted, frames);
    return 0;
}
