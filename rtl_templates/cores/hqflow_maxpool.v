// hqflow_maxpool: 3x3 max pooling of spikes, stride 2, padding 1, one time step: an OR of each
// window (numerics.maxpool_or; HLS hqflow::maxpool_or).
//   x [C][H][W] spikes (0/1)  ->  out [C][OH][OW],  OH = (H - 1) / 2 + 1,  OW = (W - 1) / 2 + 1
//   out[c][oy][ox] = OR of x[c][y][x] over y in 2oy-1 .. 2oy+1, x in 2ox-1 .. 2ox+1 (inside the map)
//
// Layout: channels last (hqflow's RTL convention): x[c][y][x] at address (y*W + x)*C + c, out[c][oy][ox]
// at (oy*OW + ox)*C + c (running addresses: + C per pixel, the next channel's base at a channel's end).
// Streaming, every input read once, channel by channel in raster order: input column x belongs to the output
// columns x >> 1 and (x + 1) >> 1 (one or two), input row y to the output rows y >> 1 and
// (y + 1) >> 1. Two OW-bit row registers collect the ORs: acc_lo for output row y >> 1 and acc_hi
// for the next one (odd rows only). At the end of an odd row, or of the channel's last row, output
// row y >> 1 is complete: it moves to the emit register and is written in OW cycles while the next
// rows are read (the next row completes >= W >= OW cycles later), so outputs are written in their
// own raster order, channel by channel.  No arithmetic but counters.
//
// Ports (the sequential cores' convention): x_addr -> x_data one cycle later (a RAM read port,
// hqflow_ram), one spike a word; out_we / out_addr / out_data a RAM write port. Handshake as every
// hqflow core: a one-cycle `start` while idle runs one step; `done` is high in the cycle that presents
// the last write; busy from the cycle after start until done.
// Cycles per time step (the start edge to the edge that samples done):  C * H * W + OW + 1
module hqflow_maxpool #(
    parameter integer C = 2,
    parameter integer H = 8,
    parameter integer W = 8,
    parameter integer IN_ADDR_BITS = (C * H * W > 1) ? $clog2(C * H * W) : 1,
    parameter integer OUT_ADDR_BITS = (C * ((H - 1) / 2 + 1) * ((W - 1) / 2 + 1) > 1)
                                      ? $clog2(C * ((H - 1) / 2 + 1) * ((W - 1) / 2 + 1)) : 1
) (
    input  wire                     clk,
    input  wire                     rst,
    input  wire                     start,
    output wire                     busy,
    output wire                     done,
    output wire [IN_ADDR_BITS-1:0]  x_addr,
    input  wire                     x_data,
    output wire                     out_we,
    output reg  [OUT_ADDR_BITS-1:0] out_addr,
    output wire                     out_data
);
    initial if (C < 1 || H < 1 || W < 1 || IN_ADDR_BITS < 1 || OUT_ADDR_BITS < 1)
        $error("hqflow_maxpool: sizes C %0d H %0d W %0d, IN_ADDR_BITS %0d, OUT_ADDR_BITS %0d must be >= 1",
               C, H, W, IN_ADDR_BITS, OUT_ADDR_BITS);
    localparam integer OH = (H - 1) / 2 + 1;
    localparam integer OW = (W - 1) / 2 + 1;
    localparam integer TOTAL_IN = C * H * W;
    localparam integer TOTAL_OUT = C * OH * OW;
    localparam integer YB = (H > 1) ? $clog2(H) : 1;
    localparam integer XB = (W > 1) ? $clog2(W) : 1;
    localparam integer CB = $clog2(OW + 2);
    localparam integer OUT_PER_CHANNEL = OH * OW;
    localparam integer OB = $clog2(OUT_PER_CHANNEL + 1);

    // read stage: raster counters
    reg                    reading;
    reg [IN_ADDR_BITS-1:0] idx;            // (y*W + x)*C + c
    reg [IN_ADDR_BITS-1:0] chan, count;    // c; values read so far
    reg [OUT_ADDR_BITS-1:0] out_chan;      // the channel being written
    reg [OB-1:0]           out_n;          // its outputs written so far
    reg [YB-1:0]           y;
    reg [XB-1:0]           x;
    // the cycle the data arrive: the tags of the value read
    reg                    valid1, row_end1, last_row1;
    reg [YB-1:0]           y1;
    reg [XB-1:0]           x1;
    // the row ORs and the emitter
    reg [OW-1:0]           acc_lo, acc_hi, emit_row;
    reg [CB-1:0]           emit_count;

    assign x_addr = idx;
    assign out_we = emit_count != 0;
    assign out_data = emit_row[0];
    assign done = out_we && out_chan == C - 1 && out_n == OUT_PER_CHANNEL - 1;
    assign busy = reading || valid1 || out_we;

    // the output columns of input column x1: x1 >> 1 and (x1 + 1) >> 1 (the one past OW dropped)
    wire [OW:0]   columns = ({{OW{1'b0}}, 1'b1} << (x1 >> 1)) | ({{OW{1'b0}}, 1'b1} << (({1'b0, x1} + 1'b1) >> 1));
    wire [OW-1:0] hit = (valid1 && x_data) ? columns[OW-1:0] : {OW{1'b0}};
    wire [OW-1:0] lo_next = acc_lo | hit;
    wire [OW-1:0] hi_next = acc_hi | (y1[0] ? hit : {OW{1'b0}});
    wire          row_complete = valid1 && row_end1 && (y1[0] || last_row1);

    always @(posedge clk) begin
        if (rst) begin
            reading <= 1'b0;
            valid1 <= 1'b0;
            emit_count <= 0;
        end else begin
            if (start && !busy) begin
                reading <= 1'b1;
                idx <= 0;
                chan <= 0;
                count <= 0;
                y <= 0;
                x <= 0;
                acc_lo <= 0;
                acc_hi <= 0;
                out_addr <= 0;
                out_chan <= 0;
                out_n <= 0;
            end else begin
                if (reading) begin
                    if (count == TOTAL_IN - 1) reading <= 1'b0;
                    count <= count + 1'b1;
                    if (x == W - 1) begin
                        x <= 0;
                        if (y == H - 1) begin                      // the channel's last value
                            y <= 0;
                            chan <= chan + 1'b1;
                            idx <= chan + 1'b1;
                        end else begin
                            y <= y + 1'b1;
                            idx <= idx + C;
                        end
                    end else begin
                        x <= x + 1'b1;
                        idx <= idx + C;
                    end
                end
                if (row_complete) begin
                    acc_lo <= last_row1 ? {OW{1'b0}} : hi_next;
                    acc_hi <= {OW{1'b0}};
                end else if (valid1) begin
                    acc_lo <= lo_next;
                    acc_hi <= hi_next;
                end
                if (out_we) begin
                    if (out_n == OUT_PER_CHANNEL - 1) begin
                        out_n <= 0;
                        out_chan <= out_chan + 1'b1;
                        out_addr <= out_chan + 1'b1;
                    end else begin
                        out_n <= out_n + 1'b1;
                        out_addr <= out_addr + C;
                    end
                end
            end
            valid1 <= reading;
            y1 <= y;
            x1 <= x;
            row_end1 <= x == W - 1;
            last_row1 <= y == H - 1;
            if (row_complete) begin
                emit_row <= lo_next;
                emit_count <= OW;
            end else if (out_we) begin
                emit_row <= emit_row >> 1;
                emit_count <= emit_count - 1'b1;
            end
        end
    end
endmodule
