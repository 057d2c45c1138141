// hqflow_conv_lif: the spiking conv 3x3 core (stride 1, zero padding 1) + LIF, one time step per start/done:
// x [C][H][W] -> s [O][H][W], both stored channels last ([H][W][C], [H][W][O]).
//
//   acc[o][y][x] = sum_{c,i,j} w_eff[o][c][i][j] * x[c][y+i-1][x+j-1]   (numerics.conv2d_acc)
// Event driven (scatter): the inputs are scanned (one read a cycle, pixel by pixel, channels
// innermost); a nonzero x[c][y][x] adds its
// weights through each tap (i, j) into output pixel (y+1-i, x+1-j), P output channels (a lane
// group g) per cycle from ROM row (c*3 + i)*3 + j; taps outside the image are idle cycles. Then the
// LIF updates every pixel's O membranes, P per cycle. G = ceil(O / P). The membranes v [H*W][O]
// stay in the core between steps (`first` at t = 0 ignores them).
//
// Layout: channels last (hqflow's RTL convention, as FINN's NHWC), inputs and outputs alike.
// Ports (the sequential cores' convention): start, first, done; x_addr ((y*W + x)*C + c) -> x_data one
// cycle later (a synchronous RAM read port); the spikes written as out_we, out_addr = (y*W + x)*G + g,
// out_data bit p = s[g*P + p][y][x] (so with P | O the word address of element ((y*W + x)*O + o) is
// that index / P, its bit the index % P).
// Memories: acc and v [H*W*G] x P*ACC_BITS / P*V_BITS, synchronous read (block RAM).
// Addresses are running offsets (a pixel's (y*W + x)*G, a tap's row and target pixel advance by
// constant steps): no multiplier, so the only DSP48s of the core are the weight lanes' (none for po2).
//
// Cycles per time step (start to done), nnz the nonzero inputs of the step:
//   cycles = C*H*W + nnz * (9*G + 1) + H*W*G + 4
module hqflow_conv_lif #(
    parameter integer C = 1, H = 1, W = 1, O = 1, P = 1,
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
        if (C < 1 || H < 1 || W < 1 || O < 1 || P < 1 || T < 1 || X_BITS < 1)
            $error("hqflow_conv_lif: sizes C %0d H %0d W %0d O %0d P %0d T %0d X_BITS %0d must be >= 1", C, H, W, O, P, T, X_BITS);
        if (BITS < 1 || BITS > 32 || ACC_BITS < 1 || ACC_BITS > 64 || V_BITS < 2 || V_BITS > 64)
            $error("hqflow_conv_lif: BITS %0d (1..32), ACC_BITS %0d (1..64), V_BITS %0d (2..64)", BITS, ACC_BITS, V_BITS);
    end
    localparam integer LANES_W = 64 / BITS;
    localparam integer KW = P > LANES_W ? P / LANES_W : 1;
    localparam integer GPW = LANES_W * KW / P;
    localparam integer G = (O + P - 1) / P;
    localparam integer ROW_WIDE = (G + GPW - 1) / GPW;
    localparam integer RW = 64 * KW;
    localparam integer ROM_DEPTH = C * 9 * ROW_WIDE;
    localparam integer NV = H * W * G;
    localparam integer GA = G > 1 ? $clog2(G) : 1;
    localparam integer RA = ROM_DEPTH > 1 ? $clog2(ROM_DEPTH) : 1;

    localparam integer S_IDLE = 0, S_SCAN = 1, S_ACC = 2, S_LIF = 3, S_DRAIN = 4, S_DONE = 5;
    reg [2:0] state;
    reg first_r;
    reg [31:0] idx, sc, sy, sx;        // the scan's next read, as (c, y, x)
    reg [31:0] pc, py, px;             // the read x_data answers
    reg [31:0] cc, cy, cx;             // the input being accumulated
    reg have;
    reg [X_BITS-1:0] x_val;
    reg [1:0] ti, tj;                  // tap
    reg [31:0] g, wsel, wadr;
    reg [31:0] s_pix, p_pix;           // (sy*W + sx)*G and (py*W + px)*G
    reg [31:0] s_row, p_row;           // sc*9*ROW_WIDE and pc*9*ROW_WIDE: the channel's first ROM row
    reg [31:0] tap_row;                // ((cc*3 + ti)*3 + tj)*ROW_WIDE
    reg [31:0] tap_pix;                // ((cy+1-ti)*W + cx+1-tj)*G, mod 2^32 (meaningful when tap_in)
    reg [31:0] l_idx;                  // S_LIF: pix*G + g
    assign x_addr = idx;

    // ---- accumulation pipeline: issue (ROM and acc read) -> add and write back ----------------
    wire signed [31:0] oy = $signed(cy) + 1 - $signed({30'd0, ti});
    wire signed [31:0] ox = $signed(cx) + 1 - $signed({30'd0, tj});
    wire tap_in = oy >= 0 && oy < H && ox >= 0 && ox < W;
    wire [31:0] acc_addr_issue = state == S_ACC ? tap_pix + g : l_idx;
    wire [RA-1:0] rom_addr = tap_row + wadr;
    wire [RW-1:0] rom_q;
    hqflow_weight_rom #(.WIDTH(RW), .DEPTH(ROM_DEPTH), .AW(RA), .FILE(ROM_FILE)) rom (
        .clk(clk), .addr(rom_addr), .q(rom_q));
    reg b_valid; reg [31:0] b_g, b_wsel, b_addr; reg [X_BITS-1:0] b_x;
    wire [P*BITS-1:0] codes;
    hqflow_rom_select #(.P(P), .BITS(BITS), .KW(KW)) select (.line(rom_q), .wsel(b_wsel), .codes(codes));
    wire [P-1:0] live = live_of(b_g);
    wire [P*ACC_BITS-1:0] prods;
    hqflow_lanes #(.P(P), .BITS(BITS), .SCHEME(SCHEME), .ZERO_LEVEL(ZERO_LEVEL), .ZP(ZP), .X_BITS(X_BITS),
                   .ACC_BITS(ACC_BITS)) lanes (.codes(codes), .live(live), .x(b_x), .prods(prods));

    reg [P*ACC_BITS-1:0] acc_mem [0:NV-1];
    reg [P*ACC_BITS-1:0] acc_q;
    reg [P*V_BITS-1:0] v_mem [0:NV-1];
    reg [P*V_BITS-1:0] v_q;
    integer i, k;
    initial for (i = 0; i < NV; i = i + 1) begin acc_mem[i] = 0; v_mem[i] = 0; end

    reg [P*ACC_BITS-1:0] acc_sum;
    always @* for (k = 0; k < P; k = k + 1)
        acc_sum[k*ACC_BITS +: ACC_BITS] = acc_q[k*ACC_BITS +: ACC_BITS] + prods[k*ACC_BITS +: ACC_BITS];

    // ---- LIF pipeline: issue (acc, v and table reads) -> charge, fire, reset ------------------------
    reg l_valid; reg [31:0] l_g, l_addr;
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
    always @(posedge clk) begin
        if ((state == S_ACC && tap_in) || state == S_LIF) acc_q <= acc_mem[acc_addr_issue];
        if (state == S_LIF) v_q <= v_mem[acc_addr_issue];
        if (b_valid) acc_mem[b_addr] <= acc_sum;
        else if (l_valid) acc_mem[l_addr] <= 0;
        if (l_valid) v_mem[l_addr] <= v_next;
    end

    always @(posedge clk) begin
        done <= 0;
        out_we <= 0;
        b_valid <= state == S_ACC && tap_in;
        b_g <= g; b_wsel <= wsel; b_x <= x_val; b_addr <= acc_addr_issue;
        l_valid <= state == S_LIF;
        l_g <= g; l_addr <= acc_addr_issue;
        if (l_valid) begin
            out_we <= 1; out_addr <= l_addr; out_data <= spikes & live_of(l_g);
        end
        case (state)
            S_IDLE: if (start) begin
                first_r <= first; idx <= 0; sc <= 0; sy <= 0; sx <= 0; have <= 0; state <= S_SCAN;
                s_pix <= 0; s_row <= 0;
            end
            S_SCAN: begin
                if (have && x_data != 0) begin
                    x_val <= x_data; cc <= pc; cy <= py; cx <= px; have <= 0;
                    ti <= 0; tj <= 0; g <= 0; wsel <= 0; wadr <= 0; state <= S_ACC;
                    tap_row <= p_row; tap_pix <= p_pix + (W + 1) * G;
                end else if (idx < C * H * W) begin
                    pc <= sc; py <= sy; px <= sx; p_pix <= s_pix; p_row <= s_row; have <= 1; idx <= idx + 1;
                    if (sc == C - 1) begin      // channels innermost: the next pixel
                        sc <= 0; s_row <= 0; s_pix <= s_pix + G;
                        if (sx == W - 1) begin sx <= 0; sy <= sy + 1; end else sx <= sx + 1;
                    end else begin sc <= sc + 1; s_row <= s_row + 9 * ROW_WIDE; end
                end else begin
                    have <= 0; g <= 0; l_idx <= 0; state <= S_LIF;
                end
            end
            S_ACC: begin
                if (g == G - 1) begin
                    g <= 0; wsel <= 0; wadr <= 0; tap_row <= tap_row + ROW_WIDE;
                    if (tj == 2) begin
                        tj <= 0; tap_pix <= tap_pix + 2 * G - W * G;
                        if (ti == 2) state <= S_SCAN; else ti <= ti + 1;
                    end else begin tj <= tj + 1; tap_pix <= tap_pix - G; end
                end else begin
                    g <= g + 1;
                    if (wsel == GPW - 1) begin wsel <= 0; wadr <= wadr + 1; end else wsel <= wsel + 1;
                end
            end
            S_LIF: begin
                l_idx <= l_idx + 1;
                if (g == G - 1) g <= 0; else g <= g + 1;
                if (l_idx == NV - 1) state <= S_DRAIN;
            end
            S_DRAIN: state <= S_DONE;   // the last LIF write
            default: begin done <= 1; state <= S_IDLE; end
        endcase
        if (rst) begin state <= S_IDLE; done <= 0; out_we <= 0; b_valid <= 0; l_valid <= 0; end
    end

    // lane k of group grp is output grp*P + k < O: only the last group has dead lanes
    function [P-1:0] live_of(input [31:0] grp);
        integer k;
        for (k = 0; k < P; k = k + 1) live_of[k] = grp != G - 1 || k < O - (G - 1) * P;
    endfunction

    initial begin state = S_IDLE; done = 0; out_we = 0; b_valid = 0; l_valid = 0; end
endmodule
