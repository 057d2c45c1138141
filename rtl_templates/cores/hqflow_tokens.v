// hqflow_tokens: a feature map as tokens, one time step: x [C][H][W] -> out [H*W][C],
// out[n][c] = x[c][y][x] with token n = y * W + x (numerics / sim: reshape and swap; HLS
// hqflow::tokens). Values pass unchanged: BITS unsigned bits each.
//
// Ports (the sequential cores' convention): x_addr -> x_data, x read in its own order (address
// c * H * W + n, counting up; latency 1, hqflow_ram); out_we / out_addr / out_data written at n * C + c
// (a running address: + C per token, back to the next channel at each channel's end; no multiplier).
// One value per cycle.
//
// Handshake as every hqflow core: a one-cycle `start` while idle runs one step; `done` is high in
// the cycle that presents the last write; busy from the cycle after start until done.
// Cycles per time step (the start edge to the edge that samples done):  C * H * W + 2
module hqflow_tokens #(
    parameter integer C = 4,
    parameter integer H = 4,
    parameter integer W = 4,
    parameter integer BITS = 1,
    parameter integer ADDR_BITS = (C * H * W > 1) ? $clog2(C * H * W) : 1
) (
    input  wire                 clk,
    input  wire                 rst,
    input  wire                 start,
    output wire                 busy,
    output wire                 done,
    output wire [ADDR_BITS-1:0] x_addr,
    input  wire [BITS-1:0]      x_data,
    output reg                  out_we,
    output reg  [ADDR_BITS-1:0] out_addr,
    output reg  [BITS-1:0]      out_data
);
    initial begin  // elaboration-time checks of the parameters
        if (C < 1 || H < 1 || W < 1 || ADDR_BITS < 1 || (C * H * W > 1 && ADDR_BITS < $clog2(C * H * W)))
            $error("hqflow_tokens: sizes C %0d H %0d W %0d must be >= 1, ADDR_BITS %0d >= clog2(C H W)", C, H, W, ADDR_BITS);
        if (BITS < 1 || BITS > 64) $error("hqflow_tokens: BITS %0d (1..64)", BITS);
    end
    localparam integer N = H * W;                // tokens
    localparam integer TOTAL = C * N;

    reg                 reading, valid1;
    reg [ADDR_BITS-1:0] idx;        // the read address: c * N + n
    reg [ADDR_BITS-1:0] n;          // the token within the channel
    reg [ADDR_BITS-1:0] channel;    // c
    reg [ADDR_BITS-1:0] waddr;      // n * C + c
    reg [ADDR_BITS-1:0] waddr1;
    reg                 last_write; // out_addr is the last of the step (the last value read)
    reg                 last1;

    assign x_addr = idx;
    assign done = out_we && last_write;
    assign busy = reading || valid1 || out_we;

    always @(posedge clk) begin
        if (rst) begin
            reading <= 1'b0;
            valid1 <= 1'b0;
            out_we <= 1'b0;
        end else begin
            if (start && !busy) begin
                reading <= 1'b1;
                idx <= 0;
                n <= 0;
                channel <= 0;
                waddr <= 0;
            end else if (reading) begin
                if (idx == TOTAL - 1) reading <= 1'b0;
                idx <= idx + 1'b1;
                if (n == N - 1) begin
                    n <= 0;
                    channel <= channel + 1'b1;
                    waddr <= channel + 1'b1;
                end else begin
                    n <= n + 1'b1;
                    waddr <= waddr + C;
                end
            end
            valid1 <= reading;
            waddr1 <= waddr;
            last1 <= idx == TOTAL - 1;
            out_we <= valid1;
            out_addr <= waddr1;
            out_data <= x_data;
            last_write <= last1;
        end
    end
endmodule
