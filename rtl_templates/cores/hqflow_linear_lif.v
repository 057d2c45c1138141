// hqflow_linear_lif: the spiking linear core + LIF, one time step per start/done: x [N][C] -> s [N][O].
//
//   acc[n][o] = sum_c w_eff[o][c] * x[n][c]    (numerics.linear_acc), then the LIF (hqflow_lif.v)
// Event driven: token by token, the inputs x[n][*] are scanned (one read a cycle) and each nonzero
// x[n][c] adds x * w_eff[:, c] into the O accumulators, P output channels (a lane group g, outputs
// g*P .. g*P+P-1) per cycle from ROM row c; then the LIF updates the token's O membranes, P per cycle.
// G = ceil(O / P) groups. The membranes v [N][O] stay in the core between steps (`first` at t = 0
// ignores them, as the HLS kernel does).
//
// Ports (the sequential cores' convention): start, first, done; x_addr (n*C + c) -> x_data one cycle
// later (a synchronous RAM read port); the spikes written as out_we, out_addr = n*G + g, out_data bit
// p = s[n][g*P + p] (lanes >= O are 0).
// Memories: acc [G] x P*ACC_BITS and v [N*G] x P*V_BITS, synchronous read (block RAM).
// Addresses are running offsets (n*C, n*G, c*ROW_WIDE advance by a constant step): no multiplier,
// so the only DSP48s of the core are the weight lanes' (none for po2).
//
// Cycles per time step (start to done), nnz_n the nonzero inputs of token n, nnz = sum nnz_n:
//   cycles = N * (C + G + 2) + nnz * (G + 1) + 2
module hqflow_linear_lif #(
    parameter integer N = 1, C = 1, O = 1, P = 1,
    parameter integer BITS = 8, SCHEME = 0, ZERO_LEVEL = 0, ZP = 0,
    parameter integer X_BITS = 1, ACC_BITS = 32, V_BITS = 64, F = 0, T = 1,
    parameter ROM_FILE = "weights.mem", BIAS_FILE = "bias.mem", THR_FILE = "thr.mem", SIGN_FILE = "sign.mem"
) (
    input  wire clk,
    input  wire rst,                   // synchronous: back to idle (the `initial` state too)
    input  wire start,
    input  wire first,
    output reg  done,
    output wire [31:0] x_addr,
    input  wire [X_BITS-1:0] x_data,
    output reg  out_we,
    output reg  [31:0] out_addr,
    output reg  [P-1:0] out_data
);
    initial begin  // elaboration-time checks of the parameters
        if (N < 1 || C < 1 || O < 1 || P < 1 || T < 1 || X_BITS < 1)
            $error("hqflow_linear_lif: sizes N %0d C %0d O %0d P %0d T %0d X_BITS %0d must be >= 1", N, C, O, P, T, X_BITS);
        if (BITS < 1 || BITS > 32 || ACC_BITS < 1 || ACC_BITS > 64 || V_BITS < 2 || V_BITS > 64)
            $error("hqflow_linear_lif: BITS %0d (1..32), ACC_BITS %0d (1..64), V_BITS %0d (2..64)", BITS, ACC_BITS, V_BITS);
    end
    localparam integer LANES_W = 64 / BITS;
    localparam integer KW = P > LANES_W ? P / LANES_W : 1;
    localparam integer GPW = LANES_W * KW / P;
    localparam integer G = (O + P - 1) / P;
    localparam integer ROW_WIDE = (G + GPW - 1) / GPW;
    localparam integer RW = 64 * KW;
    localparam integer ROM_DEPTH = C * ROW_WIDE;
    localparam integer GA = G > 1 ? $clog2(G) : 1;
    localparam integer VA = N * G > 1 ? $clog2(N * G) : 1;
    localparam integer RA = ROM_DEPTH > 1 ? $clog2(ROM_DEPTH) : 1;

    localparam integer S_IDLE = 0, S_SCAN = 1, S_ACC = 2, S_LIF = 3, S_DRAIN = 4, S_DONE = 5;
    reg [2:0] state;
    reg first_r;
    reg [31:0] n, idx, prev, cur;      // token; scan index (c), issued index, index being accumulated
    reg have;                          // x_data answers the read of `prev`
    reg [X_BITS-1:0] x_val;
    reg [31:0] g, wsel, wadr;          // lane group; its slot in the wide ROM word and the word
    reg [31:0] x_base, v_base;         // n * C and n * G
    reg [31:0] idx_row, prev_row, cur_row;  // idx, prev and cur times ROW_WIDE (their ROM rows)
    assign x_addr = x_base + idx;

    // ---- accumulation pipeline: issue (ROM and acc read) -> add and write back ----------------
    wire [RA-1:0] rom_addr = cur_row + wadr;
    wire [RW-1:0] rom_q;
    hqflow_weight_rom #(.WIDTH(RW), .DEPTH(ROM_DEPTH), .AW(RA), .FILE(ROM_FILE)) rom (
        .clk(clk), .addr(rom_addr), .q(rom_q));
    reg b_valid; reg [31:0] b_g, b_wsel; reg [X_BITS-1:0] b_x;
    wire [P*BITS-1:0] codes;
    hqflow_rom_select #(.P(P), .BITS(BITS), .KW(KW)) select (.line(rom_q), .wsel(b_wsel), .codes(codes));
    wire [P-1:0] live = live_l(b_g);
    wire [P*ACC_BITS-1:0] prods;
    hqflow_lanes #(.P(P), .BITS(BITS), .SCHEME(SCHEME), .ZERO_LEVEL(ZERO_LEVEL), .ZP(ZP), .X_BITS(X_BITS),
                   .ACC_BITS(ACC_BITS)) lanes (.codes(codes), .live(live), .x(b_x), .prods(prods));

    reg [P*ACC_BITS-1:0] acc_mem [0:G-1];
    reg [P*ACC_BITS-1:0] acc_q;
    reg [P*V_BITS-1:0] v_mem [0:N*G-1];
    reg [P*V_BITS-1:0] v_q;
    integer i, j, k;
    initial for (i = 0; i < G; i = i + 1) acc_mem[i] = 0;
    initial for (j = 0; j < N * G; j = j + 1) v_mem[j] = 0;

    reg [P*ACC_BITS-1:0] acc_sum;
    always @* for (k = 0; k < P; k = k + 1)
        acc_sum[k*ACC_BITS +: ACC_BITS] = acc_q[k*ACC_BITS +: ACC_BITS] + prods[k*ACC_BITS +: ACC_BITS];

    // ---- LIF pipeline: issue (acc, v and table reads) -> charge, fire, reset ------------------------
    reg l_valid; reg [31:0] l_g;
    wire [P*V_BITS-1:0] bias_q, thr_q; wire [P*2-1:0] sign_q;
    wire [GA-1:0] tab_addr = g;
    hqflow_weight_rom #(.WIDTH(P*V_BITS), .DEPTH(G), .AW(GA), .FILE(BIAS_FILE)) bias_rom (clk, tab_addr, bias_q);
    hqflow_weight_rom #(.WIDTH(P*V_BITS), .DEPTH(G), .AW(GA), .FILE(THR_FILE)) thr_rom (clk, tab_addr, thr_q);
    hqflow_weight_rom #(.WIDTH(P*2), .DEPTH(G), .AW(GA), .FILE(SIGN_FILE)) sign_rom (clk, tab_addr, sign_q);
    wire [P*V_BITS-1:0] v_next; wire [P-1:0] spikes;
    hqflow_lif #(.P(P), .ACC_BITS(ACC_BITS), .V_BITS(V_BITS), .F(F), .T(T)) lif (
        .first(first_r), .acc(acc_q), .v(v_q), .bias(bias_q), .thr(thr_q), .sign(sign_q),
        .v_next(v_next), .spikes(spikes));

    // memory ports: reads at issue, writes one cycle later (never the same address in one cycle)
    wire rd_acc = state == S_ACC || state == S_LIF;
    always @(posedge clk) begin
        if (rd_acc) acc_q <= acc_mem[g];
        if (state == S_LIF) v_q <= v_mem[v_base + g];
        if (b_valid) acc_mem[b_g] <= acc_sum;
        else if (l_valid) acc_mem[l_g] <= 0;
        if (l_valid) v_mem[v_base + l_g] <= v_next;
    end

    always @(posedge clk) begin
        done <= 0;
        out_we <= 0;
        b_valid <= state == S_ACC;
        b_g <= g; b_wsel <= wsel; b_x <= x_val;
        l_valid <= state == S_LIF;
        l_g <= g;
        if (l_valid) begin
            out_we <= 1; out_addr <= v_base + l_g; out_data <= spikes & live_l(l_g);
        end
        case (state)
            S_IDLE: if (start) begin
                first_r <= first; n <= 0; idx <= 0; have <= 0; state <= S_SCAN;
                x_base <= 0; v_base <= 0; idx_row <= 0;
            end
            S_SCAN: begin
                if (have && x_data != 0) begin
                    x_val <= x_data; cur <= prev; cur_row <= prev_row; have <= 0; g <= 0; wsel <= 0; wadr <= 0; state <= S_ACC;
                end else if (idx < C) begin
                    prev <= idx; prev_row <= idx_row; idx <= idx + 1; idx_row <= idx_row + ROW_WIDE; have <= 1;
                end else begin
                    have <= 0; g <= 0; state <= S_LIF;
                end
            end
            S_ACC: begin
                g <= g + 1;
                if (wsel == GPW - 1) begin wsel <= 0; wadr <= wadr + 1; end else wsel <= wsel + 1;
                if (g == G - 1) state <= S_SCAN;
            end
            S_LIF: begin
                g <= g + 1;
                if (g == G - 1) state <= S_DRAIN;
            end
            S_DRAIN: begin              // the last LIF write
                if (n == N - 1) state <= S_DONE;
                else begin
                    n <= n + 1; idx <= 0; idx_row <= 0; x_base <= x_base + C; v_base <= v_base + G;
                    state <= S_SCAN;
                end
            end
            default: begin done <= 1; state <= S_IDLE; end
        endcase
        if (rst) begin state <= S_IDLE; done <= 0; out_we <= 0; b_valid <= 0; l_valid <= 0; end
    end

    // lane k of group grp is output grp*P + k < O: only the last group has dead lanes
    function [P-1:0] live_l(input [31:0] grp);
        integer k;
        for (k = 0; k < P; k = k + 1) live_l[k] = grp != G - 1 || k < O - (G - 1) * P;
    endfunction

    initial begin state = S_IDLE; done = 0; out_we = 0; b_valid = 0; l_valid = 0; end
endmodule
