// Verilator harness of a board's whole design (hqflow_board: the UART bridge and hqflow_top) behind a
// pseudo-terminal: the host driver (`hqflow board run --port <pty>`) talks to the simulated circuit as
// it would to a board's USB serial port. The harness drives the design's uart_rx line bit by bit from
// the bytes the host writes, decodes its uart_tx line into bytes for the host, and holds rst_n low for
// the first cycles. Prints `port <path>` (the pty's name) once it is open, then runs until it is
// terminated (SIGTERM / SIGINT: prints `cycles <N>` and exits 0).
// Argument 1: CLKS_PER_BIT, as the model was built with (-GCLKS_PER_BIT).
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fcntl.h>
#include <termios.h>
#include <unistd.h>
#include "Vhqflow_board.h"
#include "verilated.h"

static volatile std::sig_atomic_t stop = 0;
static void on_signal(int) { stop = 1; }

int main(int argc, char **argv) {
    Verilated::commandArgs(argc, argv);
    const long clks = argc > 1 ? std::atol(argv[1]) : 0;
    if (clks < 2) { std::printf("usage: %s CLKS_PER_BIT (at least 2)\n", argv[0]); return 2; }
    const int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) { std::perror("posix_openpt"); return 2; }
    const char *name = ptsname(master);
    {   // raw bytes both ways (no echo, no line editing, no CR/LF translation) before the host opens it
        const int slave = open(name, O_RDWR | O_NOCTTY);
        struct termios tio;
        if (slave < 0 || tcgetattr(slave, &tio) != 0) { std::perror(name); return 2; }
        cfmakeraw(&tio);
        tcsetattr(slave, TCSANOW, &tio);
        close(slave);
    }
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    std::printf("port %s\n", name);
    std::fflush(stdout);

    Vhqflow_board board;
    std::deque<unsigned char> to_board;
    unsigned char chunk[4096];
    long long now = 0;
    // the line into the board: a 10-bit frame (start, 8 data, stop) a byte, clks cycles a bit
    int rx_bit = -1;                 // the bit being sent (-1: idle, line high)
    long rx_wait = 0;
    unsigned rx_frame = 0;
    // the line out of the board: sampled in the middle of each bit
    int tx_bit = -1;
    long tx_wait = 0;
    unsigned tx_byte = 0;
    board.uart_rx = 1;
    board.rst_n = 0;
    while (!stop) {
        if (now == 8) board.rst_n = 1;
        if (rx_bit < 0 && (now & 255) == 0) {        // the host's bytes, a chunk at a time
            const ssize_t got = read(master, chunk, sizeof chunk);
            for (ssize_t i = 0; i < got; i++) to_board.push_back(chunk[i]);
        }
        if (rx_bit < 0 && !to_board.empty() && now > 32) {
            rx_frame = 0x200u | ((unsigned)to_board.front() << 1);
            to_board.pop_front();
            rx_bit = 0; rx_wait = clks;
        }
        board.uart_rx = rx_bit < 0 ? 1 : (rx_frame >> rx_bit) & 1;
        if (rx_bit >= 0 && --rx_wait == 0) {
            rx_wait = clks;
            if (++rx_bit == 10) rx_bit = -1;
        }
        board.clk = 1; board.eval();
        board.clk = 0; board.eval();
        now++;
        const int line = board.uart_tx;
        if (tx_bit < 0) {
            if (!line) { tx_bit = 0; tx_wait = clks / 2; tx_byte = 0; }
        } else if (--tx_wait <= 0) {
            tx_wait = clks;
            if (tx_bit >= 1 && tx_bit <= 8) tx_byte |= (unsigned)line << (tx_bit - 1);
            if (tx_bit == 0 && line) tx_bit = -1;        // not a start bit after all
            else if (++tx_bit == 10) {
                tx_bit = -1;
                const unsigned char out = (unsigned char)tx_byte;
                while (write(master, &out, 1) < 0 && errno == EAGAIN) usleep(100);
            }
        }
    }
    std::printf("cycles %lld\n", now);
    board.final();
    close(master);
    return 0;
}
