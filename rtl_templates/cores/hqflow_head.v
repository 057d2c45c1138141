// hqflow_head: the classifier head (numerics.head_logits; HLS hqflow::head_accumulate / head_logits).
//   every step:  x_sum[c] += x[n][c] over the N tokens (x [N][C], address n * C + c, IN_BITS
//                unsigned); `first` (t = 0) starts the sums from 0. x_sum [C] is SUM_BITS unsigned
//                (holds x_max * N * T).
//   last step:   acc[k] = sum_c w_eff[k][c] * x_sum[c]   (classes k < CLASSES; ACC_BITS two's
//                complement, P lanes of hqflow_lanes.v over the weight ROM of hqflow_weight_rom.v: the
//                layout of numerics.rom, as the linear core reads it, rows = input channels c)
//                logits[k] = (acc[k] << BF) + bias_int[k]   (LOGIT_BITS two's complement, exact)
//   written as out_we / out_addr = k / out_data, one logit per cycle (registered).
// A step with `last` = 0 only accumulates; one with `last` = 1 accumulates and then writes the CLASSES
// logits (the ROM words of channel c, G = ceil(CLASSES / P) lane groups, one group per cycle).
// Ports (the sequential cores' convention): start, first, last, busy, done; x_addr -> x_data one cycle
// later (a RAM read port); out_we / out_addr / out_data.
//
// Memories inside: x_sum [C] x SUM_BITS and acc [G] x P*ACC_BITS (hqflow_ram: block RAM), the
// weight ROM (C * ROW_WIDE lines of 64 * KW bits, ROM_FILE) and the bias table (CLASSES lines of
// LOGIT_BITS, BIAS_FILE: bias_int in LOGIT_BITS two's complement), both $readmemh. A read of a
// word written in the cycle before is forwarded (every read-after-write distance works, C = 1 or
// G = 1 included).
// Handshake as every hqflow core: a one-cycle `start` (with `first`, `last`) while idle runs one
// step; `done` is high in the cycle that presents the step's last write (the last x_sum write, or
// the last logit); busy from the cycle after start until done.
// Cycles per time step (the start edge to the edge that samples done):
//   N * C + 1                           (last = 0)
//   N * C + C * G + CLASSES + 2         (last = 1),  G = ceil(CLASSES / P)
module hqflow_head #(
    parameter integer N = 4,
    parameter integer C = 8,
    parameter integer CLASSES = 4,
    parameter integer P = 4,
    parameter integer BITS = 8,
    parameter integer SCHEME = 0,
    parameter integer ZERO_LEVEL = 0,
    parameter integer ZP = 0,
    parameter integer IN_BITS = 1,
    parameter integer SUM_BITS = 8,
    parameter integer ACC_BITS = 24,
    parameter integer LOGIT_BITS = 32,
    parameter integer BF = 0,
    parameter ROM_FILE = "weights.mem",
    parameter BIAS_FILE = "bias.mem",
    parameter integer X_ADDR_BITS = (N * C > 1) ? $clog2(N * C) : 1,
    parameter integer CLASS_BITS = (CLASSES > 1) ? $clog2(CLASSES) : 1
) (
    input  wire                   clk,
    input  wire                   rst,
    input  wire                   start,
    input  wire                   first,
    input  wire                   last,
    output wire                   busy,
    output wire                   done,
    output wire [X_ADDR_BITS-1:0] x_addr,
    input  wire [IN_BITS-1:0]     x_data,
    output reg                    out_we,
    output reg  [CLASS_BITS-1:0]  out_addr,
    output reg  [LOGIT_BITS-1:0]  out_data
);
    initial begin  // elaboration-time checks of the parameters
        if (N < 1 || C < 1 || CLASSES < 1 || P < 1 || IN_BITS < 1)
            $error("hqflow_head: sizes N %0d C %0d CLASSES %0d P %0d IN_BITS %0d must be >= 1", N, C, CLASSES, P, IN_BITS);
        if (BITS < 1 || BITS > 32 || SUM_BITS < 1 || SUM_BITS > 64 || ACC_BITS < 1 || ACC_BITS > 64
            || LOGIT_BITS < 1 || LOGIT_BITS > 64 || BF < 0)
            $error("hqflow_head: BITS %0d (1..32), SUM_BITS %0d, ACC_BITS %0d, LOGIT_BITS %0d (1..64), BF %0d (>= 0)",
                   BITS, SUM_BITS, ACC_BITS, LOGIT_BITS, BF);
        else if (P <= 64 / BITS ? (64 / BITS) % P != 0 : P % (64 / BITS) != 0)
            $error("hqflow_head: P %0d lanes must divide the %0d codes of a ROM word or be a multiple of them", P, 64 / BITS);
    end
    localparam integer LANES_W = 64 / BITS;
    localparam integer KW = P > LANES_W ? P / LANES_W : 1;
    localparam integer GPW = LANES_W * KW / P;
    localparam integer G = (CLASSES + P - 1) / P;
    localparam integer ROW_WIDE = (G + GPW - 1) / GPW;
    localparam integer RW = 64 * KW;
    localparam integer ROM_DEPTH = C * ROW_WIDE;
    localparam integer RA = ROM_DEPTH > 1 ? $clog2(ROM_DEPTH) : 1;
    localparam integer CB = C > 1 ? $clog2(C) : 1;
    localparam integer GB = G > 1 ? $clog2(G) : 1;
    localparam integer PB = P > 1 ? $clog2(P) : 1;
    localparam integer WB = GPW > 1 ? $clog2(GPW) : 1;
    localparam [1:0] S_IDLE = 2'd0, S_SUM = 2'd1, S_DOT = 2'd2, S_OUT = 2'd3;

    reg [1:0]             state, state1;
    reg                   first_r, last_r, valid1;
    reg [X_ADDR_BITS-1:0] idx;          // S_SUM: x address n * C + c
    reg [CB-1:0]          c, c1;        // input channel (S_SUM, S_DOT)
    reg                   n0, n0_1;     // S_SUM: token 0
    reg [GB-1:0]          g, g1;        // lane group (S_DOT, S_OUT)
    reg [WB-1:0]          wsel, wsel1;  // the group's slot in its wide ROM word
    reg [RA-1:0]          rom_addr;     // c * ROW_WIDE + g / GPW
    reg [RA-1:0]          row_base;
    reg [PB-1:0]          p, p1;        // S_OUT: lane
    reg [CLASS_BITS-1:0]  k, k1;        // S_OUT: class
    reg                   end1;         // the step's last read

    assign x_addr = idx;
    assign busy = state != S_IDLE || valid1 || out_we;

    // x_sum RAM (read at c, written in S_SUM's data cycle) and its one-cycle forward
    wire [SUM_BITS-1:0] sum_q;
    wire                sum_we = valid1 && state1 == S_SUM;
    reg                 sum_fwd_v;
    reg  [CB-1:0]       sum_fwd_a;
    reg  [SUM_BITS-1:0] sum_fwd_d;
    wire [SUM_BITS-1:0] sum_old = (sum_fwd_v && sum_fwd_a == c1) ? sum_fwd_d : sum_q;
    wire [SUM_BITS-1:0] sum_new = ((first_r && n0_1) ? {SUM_BITS{1'b0}} : sum_old) + x_data;
    hqflow_ram #(.WIDTH(SUM_BITS), .DEPTH(C), .ADDR_BITS(CB)) sum_ram (
        .clk(clk), .we(sum_we), .waddr(c1), .wdata(sum_new), .re(1'b1), .raddr(c), .rdata(sum_q));

    // weight ROM and lanes (S_DOT): the group's P codes times x_sum[c]
    wire [RW-1:0] rom_q;
    hqflow_weight_rom #(.WIDTH(RW), .DEPTH(ROM_DEPTH), .AW(RA), .FILE(ROM_FILE)) rom (
        .clk(clk), .addr(rom_addr), .q(rom_q));
    // lane q's code: word q / LANES_W of the line, slot q % LANES_W (codes never straddle words)
    reg  [P*BITS-1:0] codes;
    integer q;
    // (a mux over the GPW slots with constant offsets: no multiplier in the addressing)
    integer s;
    always @* begin
        for (q = 0; q < P; q = q + 1)
            if (KW == 1) begin
                codes[q*BITS +: BITS] = rom_q[q * BITS +: BITS];
                for (s = 1; s < GPW; s = s + 1)
                    if (wsel1 == s) codes[q*BITS +: BITS] = rom_q[(s * P + q) * BITS +: BITS];
            end else codes[q*BITS +: BITS] = rom_q[(q / LANES_W) * 64 + (q % LANES_W) * BITS +: BITS];
    end
    reg  [P-1:0]      live;
    wire [P*ACC_BITS-1:0] prods;
    hqflow_lanes #(.P(P), .BITS(BITS), .SCHEME(SCHEME), .ZERO_LEVEL(ZERO_LEVEL), .ZP(ZP), .X_BITS(SUM_BITS),
                   .ACC_BITS(ACC_BITS)) lanes (.codes(codes), .live(live), .x(sum_old), .prods(prods));

    // acc RAM (read at g, written in S_DOT's data cycle) and its one-cycle forward
    wire [P*ACC_BITS-1:0] acc_q;
    reg  [P*ACC_BITS-1:0] acc_new;
    wire                  acc_we = valid1 && state1 == S_DOT;
    reg                   acc_fwd_v;
    reg  [GB-1:0]         acc_fwd_a;
    reg  [P*ACC_BITS-1:0] acc_fwd_d;
    wire [P*ACC_BITS-1:0] acc_old = (acc_fwd_v && acc_fwd_a == g1) ? acc_fwd_d : acc_q;
    hqflow_ram #(.WIDTH(P * ACC_BITS), .DEPTH(G), .ADDR_BITS(GB)) acc_ram (
        .clk(clk), .we(acc_we), .waddr(g1), .wdata(acc_new), .re(1'b1), .raddr(g), .rdata(acc_q));

    integer i;
    always @* begin
        for (i = 0; i < P; i = i + 1) begin
            live[i] = g1 != G - 1 || i < CLASSES - (G - 1) * P;  // only the last group has dead lanes
            acc_new[i*ACC_BITS +: ACC_BITS] = (c1 == 0 ? {ACC_BITS{1'b0}} : acc_old[i*ACC_BITS +: ACC_BITS])
                                              + prods[i*ACC_BITS +: ACC_BITS];
        end
    end

    // bias table (S_OUT) and the logit
    wire [LOGIT_BITS-1:0] bias_q;
    hqflow_weight_rom #(.WIDTH(LOGIT_BITS), .DEPTH(CLASSES), .AW(CLASS_BITS), .FILE(BIAS_FILE)) bias_rom (
        .clk(clk), .addr(k), .q(bias_q));
    reg  signed [ACC_BITS-1:0]   acc_lane;              // lane p1 of acc_old (a mux, constant offsets)
    integer r;
    always @* begin
        acc_lane = acc_old[ACC_BITS-1:0];
        for (r = 1; r < P; r = r + 1) if (p1 == r) acc_lane = acc_old[r*ACC_BITS +: ACC_BITS];
    end
    wire signed [LOGIT_BITS-1:0] acc_wide = acc_lane;    // sign-extended
    wire [LOGIT_BITS-1:0]        logit = (acc_wide <<< BF) + bias_q;

    assign done = (valid1 && end1 && state1 == S_SUM && !last_r) || (out_we && out_addr == CLASSES - 1);

    // the schedule: one read per cycle
    always @(posedge clk) begin
        if (rst) begin
            state <= S_IDLE;
        end else case (state)
            S_IDLE: if (start && !busy) begin
                state <= S_SUM;
                first_r <= first; last_r <= last;
                idx <= 0; c <= 0; n0 <= 1'b1;
            end
            S_SUM: begin
                idx <= idx + 1'b1;
                if (c == C - 1) begin c <= 0; n0 <= 1'b0; end else c <= c + 1'b1;
                if (idx == N * C - 1) begin
                    state <= last_r ? S_DOT : S_IDLE;
                    g <= 0; wsel <= 0; rom_addr <= 0; row_base <= 0;
                end
            end
            S_DOT: begin
                if (g == G - 1) begin
                    g <= 0; wsel <= 0;
                    rom_addr <= row_base + ROW_WIDE; row_base <= row_base + ROW_WIDE;
                    if (c == C - 1) begin
                        c <= 0; state <= S_OUT; p <= 0; k <= 0;
                    end else c <= c + 1'b1;
                end else begin
                    g <= g + 1'b1;
                    if (wsel == GPW - 1) begin wsel <= 0; rom_addr <= rom_addr + 1'b1; end
                    else wsel <= wsel + 1'b1;
                end
            end
            default: begin  // S_OUT
                k <= k + 1'b1;
                if (p == P - 1) begin p <= 0; g <= g + 1'b1; end else p <= p + 1'b1;
                if (k == CLASSES - 1) state <= S_IDLE;
            end
        endcase
    end

    // the data cycle: tags, forwards, the registered logit write
    always @(posedge clk) begin
        if (rst) begin
            valid1 <= 1'b0; out_we <= 1'b0; sum_fwd_v <= 1'b0; acc_fwd_v <= 1'b0;
        end else begin
            valid1 <= state != S_IDLE;
            state1 <= state;
            c1 <= c; n0_1 <= n0; g1 <= g; wsel1 <= wsel; p1 <= p; k1 <= k;
            end1 <= state == S_SUM && idx == N * C - 1;
            sum_fwd_v <= sum_we; sum_fwd_a <= c1; sum_fwd_d <= sum_new;
            acc_fwd_v <= acc_we; acc_fwd_a <= g1; acc_fwd_d <= acc_new;
            out_we <= valid1 && state1 == S_OUT;
            out_addr <= k1;
            out_data <= logit;
        end
    end
endmodule
